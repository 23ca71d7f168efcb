// Browser test of "Send trace context": ticking it on the webhook form and saving makes the
// receiver get a W3C traceparent that continues the publisher's trace; a webhook left
// unticked gets none. Run by scripts/browser-test.sh, whose server exports traces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { WAIT, apiClient, login, open, skip } from './harness.mjs';

/** A receiver keeping the headers of every request, by path. */
async function startReceiver(t) {
  /** @type {{path: string, headers: http.IncomingHttpHeaders}[]} */
  const got = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      got.push({ path: req.url || '', headers: req.headers });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { url: (path) => `http://127.0.0.1:${port}${path}`, got };
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const run = Date.now().toString(36);

test('Send trace context puts a traceparent on the receiver’s requests', { skip, timeout: 120_000 }, async (t) => {
  const { context, problems, watch, shot } = await open(t);
  const page = watch(await context.newPage());
  const call = apiClient(context.request);
  const rc = await startReceiver(t);
  await login(page);

  /** Creates a webhook through the form, ticking the box or not, and returns its id. */
  const createThroughForm = async (name, path, tick) => {
    await page.goto('/webhooks/new');
    await page.getByTestId('webhook-name').fill(name);
    await page.getByTestId('webhook-url').fill(rc.url(path));
    await page.getByTestId('event-message.received').uncheck();
    await page.getByTestId('event-conversation.started').check();
    const box = page.getByTestId('webhook-trace-context');
    assert.equal(await box.isChecked(), false, 'the box starts unticked');
    if (tick) await box.check();
    await page.getByTestId('webhook-save').click();
    await page.waitForURL(/\/webhooks\/wh_[0-9a-f]+$/);
    return page.url().split('/').at(-1);
  };

  const traced = await createThroughForm(`Traced ${run}`, `/traced-${run}`, true);
  await shot(page, 'tracing-webhook-saved');
  const plain = await createThroughForm(`Untraced ${run}`, `/plain-${run}`, false);
  assert.equal((await call('GET', `/api/v1/webhooks/${traced}`)).trace_context, true, 'the ticked box was saved');
  assert.equal((await call('GET', `/api/v1/webhooks/${plain}`)).trace_context, false);
  assert.match(await page.getByTestId('webhook-trace-context-setting').innerText(), /^Not sent/, 'the untraced webhook’s page says so');
  await page.goto(`/webhooks/${traced}`);
  assert.match(await page.getByTestId('webhook-trace-context-setting').innerText(), /^Sent/, 'the traced webhook’s page says so');

  // The form shows the saved setting when the webhook is edited again.
  await page.goto(`/webhooks/${traced}/edit`);
  assert.equal(await page.getByTestId('webhook-trace-context').isChecked(), true, 'the edit form shows it ticked');
  await shot(page, 'tracing-webhook-edit');

  // The publisher's own trace: the receiver's traceparent must carry its trace id.
  const traceId = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
  const res = await context.request.post('/api/v1/events', {
    headers: { Authorization: `Bearer ${process.env.HOOKRELAY_TOKEN}`, traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    data: { event: 'conversation.started', data: { conversation_id: 42, visitor_name: `Trace ${run}` } },
  });
  assert.equal(res.status(), 202, await res.text());
  const deadline = Date.now() + WAIT;
  const at = (path) => rc.got.filter((r) => r.path === path);
  while ((at(`/traced-${run}`).length < 1 || at(`/plain-${run}`).length < 1) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const [withCtx] = at(`/traced-${run}`);
  const [without] = at(`/plain-${run}`);
  assert.ok(withCtx && without, 'both receivers got the event');
  const m = TRACEPARENT.exec(String(withCtx.headers.traceparent || ''));
  assert.ok(m, `traceparent ${withCtx.headers.traceparent} is a W3C traceparent`);
  assert.equal(m[1], traceId, 'the traceparent continues the publisher’s trace');
  assert.notEqual(m[2], '00f067aa0ba902b7', 'it names Hookrelay’s own send span, not the publisher’s');
  assert.equal(without.headers.traceparent, undefined, 'the unticked webhook gets no traceparent');

  assert.deepEqual(problems, []);
});
