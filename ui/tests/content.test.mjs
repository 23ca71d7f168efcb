// Layout and content of the admin UI: what an attempt sent, what a test got back, what the
// inspector answered and received, and status at a glance (counts, failed deliveries,
// replay preview). Runs against the binary like browser.test.mjs (see harness.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BASE, WAIT, apiClient, login, open, skip } from './harness.mjs';

/** Polls check (an async function) until it returns a truthy value, within WAIT. */
async function eventually(what, check) {
  const end = Date.now() + WAIT;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * Header names (th) of the tables matching sel that break inside a word: a line ends after
 * a character that is neither a hyphen nor a space. Returns the names broken that way.
 */
function brokenNames(page, sel) {
  return page.evaluate((sel) => {
    const broken = [];
    for (const th of document.querySelectorAll(sel)) {
      const text = th.firstChild;
      if (!text || text.nodeType !== Node.TEXT_NODE) continue;
      const r = document.createRange();
      let lastTop = null;
      for (let i = 0; i < text.length; i++) {
        r.setStart(text, i);
        r.setEnd(text, i + 1);
        const rect = r.getClientRects()[0];
        if (!rect) continue;
        if (lastTop !== null && rect.top > lastTop + 2 && !/[-\s]/.test(text.data[i - 1])) broken.push(text.data);
        lastTop = rect.top;
      }
    }
    return broken;
  }, sel);
}

test('layout and content', { skip, timeout: 240_000 }, async (t) => {
  const { context, problems, watch, shot } = await open(t);
  const api = apiClient(context.request);
  const page = watch(await context.newPage());
  await login(page);
  const tag = Date.now().toString(36);

  // Three receivers: one answers 200, one 500 with a body, one 410 (the delivery fails at
  // once and the webhook is disabled).
  const bin = async (name, response) => {
    const b = await api('POST', '/api/v1/inspector/bins', { name: `${name} ${tag}` });
    if (response) await api('PATCH', `/api/v1/inspector/bins/${b.id}`, { response });
    return b;
  };
  const okBin = await bin('ok');
  const errBin = await bin('err', { status: 500, body: 'receiver exploded: database down', content_type: 'text/plain' });
  const goneBin = await bin('gone', { status: 410, body: 'gone' });
  const hook = (name, url, extra = {}) =>
    api('POST', '/api/v1/webhooks', { name: `${name} ${tag}`, url, events: ['message.received'], generate_secret: true, ...extra });
  const slack = await hook('Slack one-liner', okBin.url, { format: 'slack' });
  const failing = await hook('Failing', errBin.url);
  const gone = await hook('Gone', goneBin.url);
  await api('PATCH', `/api/v1/inspector/bins/${okBin.id}`, { webhook_id: slack.id });
  const content = `He said "hi" & <b>left</b>\nsecond line`;
  const ev = await api('POST', '/api/v1/events', {
    event: 'message.received',
    data: { message_id: 1, conversation_id: 4242, content, visitor_name: 'Ann' },
  });
  const deliveryTo = async (webhookId) => {
    const d = await api('GET', `/api/v1/events/${ev.id}`);
    return d.deliveries.find((x) => x.webhook_id === webhookId);
  };
  await eventually('the slack delivery to succeed and the gone one to fail', async () => {
    const [a, c] = [await deliveryTo(slack.id), await deliveryTo(gone.id)];
    return a?.status === 'succeeded' && c?.status === 'failed';
  });

  await t.test('the events list counts delivered, failed and pending deliveries of each event', async () => {
    await page.goto('/events');
    const row = page.locator(`[data-testid="event-row"][data-event-id="${ev.id}"]`);
    await row.waitFor();
    // Webhooks of other test files may listen too: at least this file's own outcomes show.
    const n = async (label) => Number((await row.getByTestId(`count-${label}`).innerText()).split(' ')[0]);
    assert.ok((await n('failed')) >= 1, 'the failed delivery is counted');
    assert.ok((await n('delivered')) >= 1, 'the delivered one is counted');
    assert.match(await row.getByTestId('count-failed').innerText(), /^\d+ failed$/);
    await shot(page, 'content-events-counts');
  });

  await t.test('the event page gives attempts the full width and shows the exact body sent', async () => {
    await page.goto(`/events/${ev.id}`);
    const d = await deliveryTo(slack.id);
    const row = page.locator(`[data-testid="delivery-row"][data-delivery-id="${d.id}"]`);
    // The webhook's name is a link to it.
    const link = row.getByTestId('delivery-webhook-link');
    assert.equal(await link.getAttribute('href'), `/webhooks/${slack.id}`);
    assert.equal(await link.innerText(), slack.name);
    await row.getByTestId('delivery-expand').click();
    const attempt = row.getByTestId('attempt').first();
    await attempt.getByTestId('attempt-request-body').waitFor();
    const main = await page.locator('main').boundingBox();
    const box = await attempt.boundingBox();
    assert.ok(box.width > main.width * 0.85, `the attempt is ${box.width}px wide in a ${main.width}px page`);
    // The body the bin received, byte for byte: the Slack one-liner.
    const captures = await api('GET', `/api/v1/inspector/bins/${okBin.id}/requests`);
    const sent = await api('GET', `/api/v1/inspector/bins/${okBin.id}/requests/${captures.data[0].id}`);
    assert.match(sent.body, /^\{"text":"New message in conversation #4242 from Ann: He said \\"hi\\" \\u0026amp; \\u0026lt;b\\u0026gt;left/);
    await attempt.getByTestId('attempt-request-body-raw-tab').click();
    assert.equal(await attempt.getByTestId('attempt-request-body').textContent(), sent.body);
    const sig = await attempt.getByTestId('attempt-request-headers').locator('tr', { hasText: 'X-Webhook-Signature' }).locator('td').innerText();
    assert.equal(sig, sent.headers['X-Webhook-Signature'][0], 'the signature sent is shown');
    assert.deepEqual(await brokenNames(page, '[data-testid="attempt"] th'), [], 'no header name breaks mid-word at 1280 px');
    await shot(page, 'content-event-attempt-1280');
  });

  await t.test('at 375 px header names stay whole and a toast never hides the end of the page', async () => {
    const narrow = watch(await context.newPage());
    await narrow.setViewportSize({ width: 375, height: 740 });
    await narrow.goto(`/events/${ev.id}`);
    for (const id of [slack.id, gone.id]) {
      const d = await deliveryTo(id);
      const row = narrow.locator(`[data-testid="delivery-row"][data-delivery-id="${d.id}"]`);
      await row.getByTestId('delivery-expand').click();
      await row.getByTestId('attempt').first().waitFor();
    }
    assert.deepEqual(await brokenNames(narrow, '[data-testid="attempt"] th'), [], 'no header name breaks mid-word at 375 px');
    const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow}px at 375 px`);
    // Redelivering to the disabled webhook is refused with a long error toast.
    const d = await deliveryTo(gone.id);
    await narrow.locator(`[data-testid="delivery-row"][data-delivery-id="${d.id}"]`).getByTestId('redeliver').click();
    const toast = narrow.getByTestId('toast').filter({ hasText: 'disabled' });
    await toast.waitFor();
    // The room below the page follows the toasts' height through a ResizeObserver, a frame
    // after the toast is laid out: measure once it has.
    await narrow.waitForFunction(() => {
      const h = document.querySelector('[data-testid="toasts"]').getBoundingClientRect().height;
      return document.body.style.getPropertyValue('--toast-space') === `${Math.ceil(h) + 16}px`;
    });
    await narrow.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
    const last = await narrow.evaluate(() => {
      const cards = document.querySelectorAll('main section.card');
      return cards[cards.length - 1].getBoundingClientRect().bottom;
    });
    const toastTop = (await narrow.getByTestId('toasts').boundingBox()).y;
    assert.ok(last <= toastTop, `the page ends at ${last}px, under the toast at ${toastTop}px`);
    await shot(narrow, 'content-event-375');
    await narrow.close();
  });

  await t.test("a failed test shows the receiver's answer, and tests are counted apart", async () => {
    await page.goto('/webhooks');
    const card = page.locator(`[data-testid="webhook-card"][data-webhook-id="${failing.id}"]`);
    await card.getByTestId('webhook-test').click();
    const result = card.getByTestId('test-result');
    await result.getByTestId('test-status').filter({ hasText: 'HTTP 500' }).waitFor();
    assert.equal(await result.getByTestId('test-response-body').innerText(), 'receiver exploded: database down');
    await page.reload();
    await card.getByTestId('stats-tests').filter({ hasText: 'Tests 0 ok · 1 failed' }).waitFor();
    assert.match(await card.getByTestId('stats-attempts').innerText(), /^Attempts 0 ok · [1-9]\d* failed$/);
    await shot(page, 'content-test-500');
  });

  await t.test('the capture list shows what the bin answered; broken JSON is flagged, forms are decoded', async () => {
    const raw = await bin('raw');
    // A Buffer is sent as it is (a string would be JSON-encoded for a JSON type).
    const send = (type, body) => context.request.post(raw.url, { headers: { 'Content-Type': type }, data: Buffer.from(body) });
    await send('application/x-www-form-urlencoded', 'name=Ann+Lee&note=%22quoted%22+%26+more&tag=a&tag=b');
    await send('application/json', '{"event": "message.received", "data": {');
    await page.goto(`/inspector/${raw.id}`);
    const items = page.getByTestId('capture-item');
    await items.nth(1).waitFor();
    assert.equal(await items.nth(0).getByTestId('capture-answered').innerText(), '→ 200');
    const detail = page.getByTestId('capture-detail');
    await detail.getByTestId('capture-invalid-json').filter({ hasText: 'Invalid JSON' }).waitFor();
    await items.nth(1).click();
    const form = detail.getByTestId('capture-form');
    await form.waitFor();
    const rows = await form.locator('tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((c) => c.textContent)));
    assert.deepEqual(rows, [['name', 'Ann Lee'], ['note', '"quoted" & more'], ['tag', 'a'], ['tag', 'b']]);
    await detail.getByTestId('capture-form-raw-tab').click();
    assert.equal(await detail.getByTestId('capture-body').textContent(), 'name=Ann+Lee&note=%22quoted%22+%26+more&tag=a&tag=b');
    // The forward result is headed with where it went.
    await detail.locator('details.forward summary').click();
    await detail.getByTestId('forward-url').fill(errBin.url);
    await detail.getByTestId('forward-submit').click();
    await detail.getByTestId('forward-result-heading').filter({ hasText: `Answer from ${errBin.url}` }).waitFor();
    await shot(page, 'content-capture-form');

    await page.goto(`/inspector/${errBin.id}`);
    await page.getByTestId('capture-answered').first().filter({ hasText: '→ 500' }).waitFor();
  });

  await t.test('replay shows what it would queue, asks, and marks what it queued', async () => {
    await page.goto(`/webhooks/${slack.id}`);
    await page.locator('details.replay summary').click();
    // Other test files publish at the same time: the count is checked for what the dialog
    // itself says, and "nothing queued yet" by the webhook's replay jobs.
    await page.getByTestId('replay-submit').click();
    const preview = page.getByTestId('replay-preview');
    await preview.waitFor();
    const events = Number(await preview.getAttribute('data-events'));
    assert.ok(events >= 1, `preview of ${events} events`);
    const ok = page.locator('dialog[open]').getByTestId('confirm-ok');
    assert.match(await ok.innerText(), new RegExp(`^Queue ${events} deliver(y|ies)$`));
    await shot(page, 'content-replay-preview');
    assert.equal((await api('GET', `/api/v1/webhooks/${slack.id}/replays`)).data.length, 0, 'no replay before confirming');
    await ok.click();
    await page.getByTestId('toast').filter({ hasText: 'Replay started' }).waitFor();
    await page.reload();
    await page.getByTestId('delivery-row').filter({ has: page.getByTestId('replay-badge') }).first().waitFor();
  });

  await t.test('failed deliveries of every webhook are listed, with a link and a redelivery', async () => {
    const d = await deliveryTo(gone.id);
    await page.getByTestId('nav-deliveries-failed').click();
    await page.waitForURL(/\/deliveries\/failed$/);
    const row = page.locator(`[data-testid="failed-list"] [data-testid="delivery-row"][data-delivery-id="${d.id}"]`);
    await row.waitFor();
    assert.equal(await row.getByTestId('delivery-webhook-link').getAttribute('href'), `/webhooks/${gone.id}`);
    assert.match(await row.innerText(), /410/);
    await shot(page, 'content-failed-deliveries');
    // Back on, the receiver fixed: Redeliver sends it again.
    await api('PATCH', `/api/v1/inspector/bins/${goneBin.id}`, { response: { status: 200 } });
    await api('PATCH', `/api/v1/webhooks/${gone.id}`, { enabled: true });
    await row.getByTestId('redeliver').click();
    await page.getByTestId('toast').filter({ hasText: 'Redelivery queued' }).waitFor();
    await eventually('the redelivery to succeed', async () => (await api('GET', `/api/v1/deliveries/${d.id}`)).status === 'succeeded');
  });

  await t.test('dark mode at 375 px', async () => {
    const dark = await open(t, { viewport: { width: 375, height: 800 }, colorScheme: 'dark' });
    const p = dark.watch(await dark.context.newPage());
    await login(p);
    await p.goto(`/events/${ev.id}`);
    const d = await deliveryTo(slack.id);
    await p.locator(`[data-testid="delivery-row"][data-delivery-id="${d.id}"]`).getByTestId('delivery-expand').click();
    await p.getByTestId('attempt-request-body').first().waitFor();
    await dark.shot(p, 'content-event-375-dark');
    assert.deepEqual(dark.problems, []);
  });

  assert.deepEqual(problems, [], 'no page errors, console errors or 5xx');
});

test('copy as curl keeps each flag with its value and replays the request byte for byte', { skip, timeout: 60_000 }, async () => {
  globalThis.location = /** @type {any} */ ({ href: `${BASE}/` });
  const { curlCommand } = await import('../src/lib/curl.js');
  const got = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      got.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.end('ok');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const bin = `http://127.0.0.1:${server.address().port}/inspect/abc`;
    const body = `{"text":"it's \\"quoted\\"\\n","raw":"line one\nline two $HOME \`x\`"}`;
    const capture = {
      method: 'POST',
      path: '/inspect/abc/hook',
      query: 'a=1&b=two%20words',
      headers: { 'Content-Type': ['application/json'], 'X-Webhook-Signature': ["sha256=it's"], Host: ['elsewhere'] },
      body,
      body_encoding: 'utf8',
    };
    const cmd = curlCommand(capture, bin);
    const lines = cmd.split(' \\\n  ');
    assert.match(lines[0], /^curl -X POST '/);
    for (const l of lines.slice(1, -1)) assert.match(l, /^-H '/, 'a header flag and its value share a line');
    assert.match(lines.at(-1), /^--data-binary '/, 'the body flag and its value share a line');
    await promisify(execFile)('bash', ['-c', `${cmd} -s -o /dev/null`]); // async: the receiver runs in this process
    const req = got.at(-1);
    assert.equal(req.url, '/inspect/abc/hook?a=1&b=two%20words');
    assert.equal(req.body.toString('utf8'), body, 'the body arrives byte for byte');
    assert.equal(req.headers['x-webhook-signature'], "sha256=it's");

    // A binary body goes through base64 and arrives unchanged.
    const bytes = Buffer.from([0, 255, 10, 39, 34, 92, 128]);
    const bcmd = curlCommand({ ...capture, body: bytes.toString('base64'), body_encoding: 'base64' }, bin);
    await promisify(execFile)('bash', ['-c', `${bcmd} -s -o /dev/null`]);
    assert.deepEqual([...got.at(-1).body], [...bytes]);
  } finally {
    server.close();
  }
});
