// Browser tests of a webhook's honest states: the two-step secret rotation on the webhook's
// page (checked by a receiver that verifies X-Webhook-Signature the way the README's receivers
// do), a failing and a 410-disabled webhook, and the inspector's "Create a webhook pointing
// here" ending with a verified signature. Run by scripts/browser-test.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { WAIT, apiClient, login, open, skip } from './harness.mjs';

/**
 * A local receiver: answers each path with the status set for it (200 by default) and keeps
 * what it got, so the test can verify signatures itself.
 */
async function startReceiver(t) {
  /** @type {{path: string, headers: http.IncomingHttpHeaders, body: Buffer}[]} */
  const got = [];
  /** @type {Record<string, number>} */
  const status = {};
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ path: req.url || '', headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(status[req.url || ''] || 200, { 'Content-Type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { url: (path) => `http://127.0.0.1:${port}${path}`, got, status };
}

/** The seed receiver's check: lowercase hex HMAC-SHA256 of the raw body. */
function seedVerifies(secret, req) {
  const want = crypto.createHmac('sha256', secret).update(req.body).digest('hex');
  const sig = String(req.headers['x-webhook-signature'] || '');
  return sig.length === want.length && crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(want));
}

/** A Standard Webhooks receiver's check: one of webhook-signature's entries is made with secret. */
function standardVerifies(secret, req) {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret);
  const signed = `${req.headers['webhook-id']}.${req.headers['webhook-timestamp']}.${req.body}`;
  const want = `v1,${crypto.createHmac('sha256', key).update(signed).digest('base64')}`;
  return String(req.headers['webhook-signature'] || '').split(' ').includes(want);
}

/** The page's one date format (format.js dateTime), computed in the browser for an API time. */
const pageDate = (page, iso) =>
  page.evaluate((iso) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' }).format(new Date(iso)), iso);

const confirm = (page) => page.locator('dialog[open] [data-testid="confirm-ok"]').click();

const run = Date.now().toString(36);
const message = (n) => ({ event: 'message.received', data: { conversation_id: 7, message_id: n, content: `rotation test ${run}` } });

test('signing secret rotation, failing and disabled states, the bin flow', { skip, timeout: 240_000 }, async (t) => {
  const { context, problems, watch, shot } = await open(t);
  const page = watch(await context.newPage());
  const call = apiClient(context.request);
  const rc = await startReceiver(t);
  await login(page);

  await t.test('a rotation keeps X-Webhook-Signature on the old secret until it is activated', async () => {
    const old = 'whsec_' + crypto.randomBytes(24).toString('base64');
    const wh = await call('POST', '/api/v1/webhooks', {
      name: `Rotation ${run}`, url: rc.url(`/rotate-${run}`), secret: old, events: ['conversation.started'],
    });
    const received = () => rc.got.filter((r) => r.path === `/rotate-${run}`);
    const sendTest = async () => {
      const before = received().length;
      await page.getByTestId('webhook-test').click();
      await page.getByTestId('test-result').waitFor();
      assert.equal(received().length, before + 1, 'the test reached the receiver');
      return received().at(-1);
    };

    await page.goto(`/webhooks/${wh.id}`);
    const card = page.getByTestId('signing');
    await page.locator('[data-testid="signing"][data-state="current"]').waitFor();
    await card.getByTestId('secret-reveal').click();
    assert.equal(await card.getByTestId('secret-current').innerText(), old, 'reveal shows the secret without going through Edit');

    // Nothing changes before the admin confirms; the confirmation says what receivers must do.
    await card.getByTestId('rotation-start').click();
    const dialog = page.locator('dialog[open]');
    assert.match(await dialog.innerText(), /X-Webhook-Signature stays on the current secret until the new one is activated/);
    assert.match(await dialog.innerText(), /make every receiver accept the new secret/);
    await dialog.getByTestId('confirm-cancel').click();
    assert.equal(await card.getAttribute('data-state'), 'current', 'cancelling the dialog changes nothing');

    await card.getByTestId('rotation-start').click();
    await shot(page, 'rotation-confirm');
    await confirm(page);
    await page.locator('[data-testid="signing"][data-state="pending"]').waitFor();
    assert.equal(await card.getByTestId('secret-current').innerText(), old, 'both secrets are shown to copy');
    const next = await card.getByTestId('secret-next').innerText();
    assert.match(next, /^whsec_/);
    assert.notEqual(next, old);
    const webhook = await call('GET', `/api/v1/webhooks/${wh.id}`);
    assert.match(await card.getByTestId('signing-state').innerText(),
      new RegExp(`since ${(await pageDate(page, webhook.secret_rotation.pending_since)).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    await shot(page, 'rotation-pending');

    let req = await sendTest();
    assert.ok(seedVerifies(old, req), 'while pending, X-Webhook-Signature verifies with the old secret');
    assert.ok(!seedVerifies(next, req), 'while pending, X-Webhook-Signature is not signed with the new secret');
    assert.ok(standardVerifies(old, req) && standardVerifies(next, req), 'while pending, webhook-signature carries both secrets');

    await card.getByTestId('rotation-activate').click();
    assert.match(await dialog.innerText(), /must\s+already accept the new secret, or they will reject every request/);
    await confirm(page);
    await page.locator('[data-testid="signing"][data-state="current"]').waitFor();
    const after = await call('GET', `/api/v1/webhooks/${wh.id}`);
    assert.equal(await card.getByTestId('previous-valid-until').innerText(),
      `The previous secret still signs webhook-signature until ${await pageDate(page, after.secret_rotation.previous_valid_until)}.`);
    req = await sendTest();
    assert.ok(seedVerifies(next, req), 'after activation, X-Webhook-Signature verifies with the new secret');
    assert.ok(standardVerifies(old, req), 'after activation, webhook-signature still carries the old secret');
    await shot(page, 'rotation-activated');
  });

  await t.test('a rotation scheduled for a time shows when it activates, and can be cancelled', async () => {
    const wh = await call('POST', '/api/v1/webhooks', {
      name: `Scheduled ${run}`, url: rc.url(`/scheduled-${run}`), generate_secret: true, events: ['conversation.started'],
    });
    await page.goto(`/webhooks/${wh.id}`);
    const card = page.getByTestId('signing');
    await card.getByTestId('rotation-start').click();
    await page.getByTestId('rotation-when-at').check();
    // Two hours from now, as the datetime-local field takes it (local time, minutes).
    const local = await page.evaluate(() => {
      const d = new Date(Date.now() + 2 * 3600_000);
      return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
    });
    await page.getByTestId('rotation-activate-at').fill(local);
    await confirm(page);
    await page.locator('[data-testid="signing"][data-state="scheduled"]').waitFor();
    const got = await call('GET', `/api/v1/webhooks/${wh.id}`);
    assert.equal(new Date(got.secret_rotation.activates_at).getTime(), await page.evaluate((l) => new Date(l).getTime(), local));
    assert.equal(await card.getByTestId('rotation-activates-at').innerText(), await pageDate(page, got.secret_rotation.activates_at));

    await card.getByTestId('rotation-cancel').click();
    assert.match(await page.locator('dialog[open]').innerText(), /Receivers keep\s+verifying with the current secret/);
    await confirm(page);
    await page.locator('[data-testid="signing"][data-state="current"]').waitFor();
    assert.equal((await call('GET', `/api/v1/webhooks/${wh.id}`)).secret_rotation.pending_since, null);
  });

  // A webhook whose receiver answers status, sent a real event; its page once the banner shows.
  const answering = async (status, bannerId) => {
    const path = `/status-${status}-${run}`;
    rc.status[path] = status;
    const wh = await call('POST', '/api/v1/webhooks', { name: `Answers ${status} ${run}`, url: rc.url(path), events: ['message.received'] });
    await call('POST', '/api/v1/events', message(status));
    await page.goto(`/webhooks/${wh.id}`);
    const banner = page.getByTestId(bannerId);
    await banner.waitFor({ timeout: WAIT * 2 });
    return { wh, banner, path };
  };

  await t.test('a failing webhook says since when, and when it will be disabled', async () => {
    const { wh, banner } = await answering(500, 'failing-banner');
    const got = await call('GET', `/api/v1/webhooks/${wh.id}`);
    assert.ok(got.failing_since && got.disable_at, 'the server reports failing_since and disable_at');
    const text = await banner.innerText();
    assert.ok(text.includes(`Failing since ${await pageDate(page, got.failing_since)}`), text);
    assert.equal(await banner.getByTestId('disable-at').innerText(), await pageDate(page, got.disable_at));
    // Still retrying: the delivery does not claim to be final.
    await page.getByTestId('delivery-row').first().waitFor();
    assert.equal(await page.getByTestId('no-more-attempts').count(), 0);
    await shot(page, 'webhook-failing');

    await page.goto('/webhooks');
    const card = page.locator(`[data-testid="webhook-card"][data-webhook-id="${wh.id}"]`);
    assert.match(await card.getByTestId('failing-since').innerText(), /Failing since .*disabled automatically on/);
  });

  await t.test('a webhook disabled by a 410 says why, how to re-enable, and re-enables from the banner', async () => {
    const { wh, banner, path } = await answering(410, 'disabled-banner');
    assert.match(await banner.getByTestId('disabled-reason').innerText(), /410 Gone/);
    assert.match(await banner.innerText(), /To re-enable it, fix the endpoint/);
    const toggle = page.getByTestId('webhook-toggle');
    assert.equal(await toggle.getAttribute('aria-checked'), 'false');
    assert.equal((await toggle.innerText()).trim(), 'Disabled', 'the switch label follows the state');
    // The log may have loaded before the attempt was recorded; it follows the server.
    const row = page.locator('[data-testid="delivery-row"][data-status="failed"]');
    await row.waitFor({ timeout: WAIT * 2 });
    assert.match(await row.getByTestId('no-more-attempts').innerText(), /No more attempts will be made: the\s+endpoint answered 410 Gone/);
    await shot(page, 'webhook-disabled-410');

    rc.status[path] = 200; // the endpoint is fixed
    await banner.getByTestId('banner-enable').click();
    await page.locator('[data-testid="webhook-toggle"][aria-checked="true"]').waitFor();
    assert.equal((await toggle.innerText()).trim(), 'Enabled');
    await banner.waitFor({ state: 'detached' });
    assert.equal((await call('GET', `/api/v1/webhooks/${wh.id}`)).enabled, true);
  });

  await t.test('a webhook created from a bin has a secret, and its first capture is verified', async () => {
    await page.goto('/inspector');
    await page.getByTestId('bin-name').fill(`Rotation bin ${run}`);
    await page.getByTestId('bin-create').click();
    await page.waitForURL(/\/inspector\/[^/]+$/);
    const binId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop() || '');
    await page.locator('[data-testid="live-status"][data-state="live"]').waitFor();
    await page.getByTestId('bin-create-webhook').click();
    await page.waitForURL(/\/webhooks\/new/);
    // No typing of a secret: the form comes with one.
    assert.match(await page.getByTestId('webhook-secret').inputValue(), /^whsec_/);
    await page.getByTestId('webhook-save').click();
    await page.waitForURL(new RegExp(`/inspector/${binId}$`));
    await page.getByTestId('bin-webhook-link').waitFor();
    await page.locator('[data-testid="live-status"][data-state="live"]').waitFor();
    await page.getByTestId('bin-send-test').click();
    const detail = page.getByTestId('capture-detail');
    await detail.waitFor();
    await detail.locator('[data-testid="verdict-signature"][data-verdict="valid"]').waitFor();
    await shot(page, 'bin-verified');
  });

  await t.test('at 375 px in dark mode the signing card and banners fit', async () => {
    const small = await open(t, { viewport: { width: 375, height: 800 }, colorScheme: 'dark' });
    const p = small.watch(await small.context.newPage());
    await login(p);
    const wh = await call('POST', '/api/v1/webhooks', {
      name: `Narrow ${run}`, url: rc.url(`/narrow-${run}`), generate_secret: true, events: ['conversation.started'],
    });
    await call('POST', `/api/v1/webhooks/${wh.id}/secret/rotation`, {});
    await p.goto(`/webhooks/${wh.id}`);
    await p.locator('[data-testid="signing"][data-state="pending"]').waitFor();
    await p.getByTestId('secret-reveal').click();
    await p.getByTestId('secret-next').waitFor();
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
    await small.shot(p, 'rotation-375-dark');
    assert.deepEqual(small.problems, []);
  });

  assert.deepEqual(problems, []);
});
