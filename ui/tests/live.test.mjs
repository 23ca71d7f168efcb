// Pages left open follow the server without a reload: changes made through the API, from
// outside the page, reach it over the shared change stream (GET /api/v1/changes), and
// relative times tick with the shared clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiClient, login, open, skip } from './harness.mjs';

const LIVE = 10_000; // "within about a second", with room for a busy CI machine

test('pages follow the server live', { skip, timeout: 180_000 }, async (t) => {
  const { context, problems, watch, shot } = await open(t);
  const page = watch(await context.newPage());
  const api = apiClient(page.request);
  const suffix = Date.now().toString(36);
  await login(page);

  /** A bin answering `status` to every request, and a webhook sending to it. */
  async function hookTo(name, status) {
    const bin = await api('POST', '/api/v1/inspector/bins', { name: `${name} bin ${suffix}`, response: { status } });
    return api('POST', '/api/v1/webhooks', { name: `${name} ${suffix}`, url: bin.url, events: ['message.received'] });
  }
  const card = (id) => page.locator(`[data-testid="webhook-card"][data-webhook-id="${id}"]`);
  const sample = (n) => ({ event: 'message.received', data: { conversation_id: n, message_id: n, content: `live ${suffix}` } });

  await t.test('a webhook a 410 disables flips to disabled on the open list', async () => {
    const hook = await hookTo('Gone', 410);
    await page.goto('/webhooks');
    await card(hook.id).waitFor();
    assert.equal(await card(hook.id).getAttribute('data-enabled'), 'true');
    await card(hook.id).getByText('Never delivered').waitFor();

    await api('POST', '/api/v1/events', sample(1));
    await card(hook.id).and(page.locator('[data-enabled="false"]')).waitFor({ timeout: LIVE });
    await card(hook.id).getByTestId('disabled-reason').waitFor({ timeout: LIVE });
    await card(hook.id).getByText('Never delivered').waitFor({ state: 'detached', timeout: LIVE });
    await shot(page, 'live-webhook-disabled');
  });

  await t.test('Test on the list updates the card’s traffic line', async () => {
    const hook = await hookTo('Traffic', 200);
    await page.goto('/webhooks');
    const c = card(hook.id);
    await c.getByText('No traffic, 24 h').waitFor();
    await c.getByTestId('webhook-test').click();
    await c.getByText(/delivered/i).first().waitFor();
    // A test is counted apart from deliveries' attempts.
    await c.getByTestId('stats-tests').filter({ hasText: 'Tests 1 ok · 0 failed' }).waitFor({ timeout: LIVE });
    await c.getByText('No traffic, 24 h').waitFor({ state: 'detached' });
    await shot(page, 'live-webhook-tested');
  });

  await t.test('an event published through the API appears on the open Events page', async () => {
    await page.goto('/events');
    await page.locator('[data-testid="event-list"], [data-testid="events-empty"]').first().waitFor();
    const published = await api('POST', '/api/v1/events', sample(2));
    await page.locator(`[data-testid="event-row"][data-event-id="${published.id}"]`).waitFor({ timeout: LIVE });
    await shot(page, 'live-events');
  });

  await t.test('a relative time ticks while the page is open', async () => {
    const published = await api('POST', '/api/v1/events', sample(3));
    await page.goto('/events');
    const when = page.locator(`[data-testid="event-row"][data-event-id="${published.id}"] [title]`).last();
    await when.waitFor();
    const first = await when.textContent();
    await page.waitForFunction(
      ([sel, before]) => {
        const el = [...document.querySelectorAll(sel)].pop();
        return el && el.textContent !== before && /second/.test(el.textContent);
      },
      [`[data-testid="event-row"][data-event-id="${published.id}"] [title]`, first],
      { timeout: 15_000 },
    );
  });

  await t.test('the webhook page shows a new delivery and its outcome as they happen', async () => {
    const hook = await hookTo('Detail', 200);
    await page.goto(`/webhooks/${hook.id}`);
    await page.getByTestId('webhook-title').waitFor();
    await api('POST', '/api/v1/events', sample(4));
    await page.locator('[data-testid="delivery-row"][data-status="succeeded"]').first().waitFor({ timeout: LIVE });
  });

  await t.test('a lost connection is said, and the page catches up when it comes back', async () => {
    // Refuse the change stream (as a dropped network would) until `refuse` is turned off.
    let refuse = true;
    await page.routeWebSocket(/\/api\/v1\/changes$/, (ws) => {
      if (refuse) ws.close();
      else ws.connectToServer();
    });
    await page.goto('/events');
    await page.getByTestId('events-refresh').waitFor();
    await page.getByTestId('live-lost').waitFor({ timeout: LIVE });
    await shot(page, 'live-connection-lost');
    // Refresh works without the stream.
    const refreshed = await api('POST', '/api/v1/events', sample(5));
    await page.getByTestId('events-refresh').click();
    await page.locator(`[data-testid="event-row"][data-event-id="${refreshed.id}"]`).waitFor();
    const missed = await api('POST', '/api/v1/events', sample(6));
    refuse = false;
    // Back-off is at most 15 s; after reconnecting the page refetches what it shows.
    await page.getByTestId('live-lost').waitFor({ state: 'detached', timeout: 30_000 });
    await page.locator(`[data-testid="event-row"][data-event-id="${missed.id}"]`).waitFor({ timeout: LIVE });
  });

  await t.test('a session ended elsewhere sends the open page to the login page', async () => {
    await page.goto('/events');
    await page.getByTestId('events-refresh').waitFor();
    // The page asks whether its session is still on before it reconnects. A slow answer (a
    // busy machine, here held 2 s, past the first reconnect's back-off) must not let it
    // reconnect meanwhile: the refused handshake would be an error in the console, which
    // `problems` below counts.
    await page.route(/\/api\/v1\/session$/, async (route) => {
      if (route.request().method() === 'GET') await new Promise((r) => setTimeout(r, 2000));
      await route.continue();
    });
    // Another tab logs out: the server ends the session and closes this page's stream.
    const res = await page.request.fetch('/api/v1/session', { method: 'DELETE', headers: { 'X-Requested-With': 'XMLHttpRequest' } });
    assert.equal(res.status(), 204);
    await page.getByTestId('login-token').waitFor({ timeout: LIVE });
    await page.getByTestId('toast').filter({ hasText: 'session has ended' }).waitFor();
  });

  assert.deepEqual(problems, []);
});

test('the lost-connection notice and Refresh fit a 375 px screen in dark mode', { skip, timeout: 120_000 }, async (t) => {
  const { context, problems, watch, shot } = await open(t, { viewport: { width: 375, height: 800 }, colorScheme: 'dark' });
  const page = watch(await context.newPage());
  await page.routeWebSocket(/\/api\/v1\/changes$/, (ws) => ws.close());
  await login(page);
  await page.goto('/events');
  await page.getByTestId('events-refresh').waitFor();
  await page.getByTestId('live-lost').waitFor({ timeout: LIVE });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
  await shot(page, 'live-connection-lost-375-dark');
  assert.deepEqual(problems, []);
});
