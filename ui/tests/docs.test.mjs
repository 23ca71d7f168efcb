// What the UI says about the server, and the interactive API docs at /docs, against the server
// scripts/browser-test.sh starts: --allow-http, --allow-private-targets, --delivery-timeout 7s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { SHOTS, TOKEN, apiClient, login, open, skip } from './harness.mjs';

test('the login page loads without a console error', { skip, timeout: 60_000 }, async (t) => {
  const { context, shot } = await open(t);
  const page = await context.newPage();
  // harness's watch() ignores "Failed to load resource … 4xx": listen to every console error.
  const errors = [];
  page.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
  page.on('pageerror', (err) => errors.push(err.message));
  const probe = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/session' && r.request().method() === 'GET');
  await page.goto('/login');
  const res = await probe;
  assert.equal(res.status(), 200, 'the session probe answers 200 when logged out');
  assert.deepEqual(await res.json(), { authenticated: false, method: '' });
  await page.getByTestId('login-token').waitFor();
  await page.waitForLoadState('networkidle');
  await shot(page, 'docs-login-logged-out');
  assert.deepEqual(errors, []);
});

test('help texts state the server settings; a missing webhook says so', { skip, timeout: 90_000 }, async (t) => {
  const { context, problems, watch, shot } = await open(t);
  const page = watch(await context.newPage());
  const api = apiClient(context.request);
  const settings = await api('GET', '/api/v1/settings');
  assert.equal(settings.delivery_timeout_seconds, 7, 'browser-test.sh starts the server with --delivery-timeout 7s');
  assert.equal(settings.allow_http, true);
  await login(page);

  await t.test('the webhook form states the timeout and does not demand https', async () => {
    await page.goto('/webhooks/new');
    const hint = page.getByTestId('webhook-url-hint');
    await hint.filter({ hasText: 'within 7 seconds' }).waitFor();
    const text = (await hint.innerText()).replace(/\s+/g, ' ');
    assert.match(text, /https:\/\/ or http:\/\//, text);
    assert.doesNotMatch(text, /HTTPS endpoint|10 seconds|must use https/i, text);
    assert.doesNotMatch(text, /private network/, 'private targets are allowed here');
    await shot(page, 'docs-webhook-form-hint');
    // And the server agrees: an http:// URL is accepted.
    const name = `plain http ${Date.now().toString(36)}`;
    await page.getByTestId('webhook-name').fill(name);
    await page.getByTestId('webhook-url').fill('http://127.0.0.1:9/hook');
    await page.getByTestId('webhook-save').click();
    await page.waitForURL(/\/webhooks\/(?!new)[^/]+$/);
    await page.getByRole('heading', { name, level: 1 }).waitFor();
    const id = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
    await api('DELETE', `/api/v1/webhooks/${id}`);
  });

  await t.test('a webhook that does not exist is reported as such, with no retry', async () => {
    await page.goto('/webhooks/wh_does_not_exist_0000');
    await page.getByRole('heading', { name: 'Webhook not found', level: 1 }).waitFor();
    const notice = page.getByTestId('not-found-notice');
    assert.match(await notice.innerText(), /no webhook wh_does_not_exist_0000: it was deleted/);
    assert.equal(await page.getByRole('button', { name: 'Try again' }).count(), 0, 'no Try again on a 404');
    await shot(page, 'docs-webhook-missing');
    await page.getByTestId('not-found-back').click();
    await page.waitForURL(/\/webhooks$/);

    await page.goto('/webhooks/wh_does_not_exist_0000/edit');
    await page.getByTestId('not-found-notice').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Try again' }).count(), 0);
  });

  await t.test('no console errors, page errors or server errors', () => {
    assert.deepEqual(problems, []);
  });
});

/**
 * Waits for Swagger UI to render the document: a 1 MB script to parse, slow on a busy machine.
 * @param {import('playwright-core').Page} page
 */
async function docsLoaded(page) {
  await page.locator('#operations-events-publishEvent').waitFor({ timeout: 60_000 });
}

/**
 * Opens POST /api/v1/events (click 1) and presses Execute (click 2); returns the response.
 * @param {import('playwright-core').Page} page
 */
async function publishFromDocs(page) {
  const op = page.locator('#operations-events-publishEvent');
  await op.locator('.opblock-summary').first().click();
  const body = op.locator('textarea.body-param__text');
  await body.waitFor();
  const prefilled = JSON.parse(await body.inputValue());
  assert.equal(prefilled.event, 'conversation.started', 'the first documented example is prefilled');
  assert.equal(prefilled.data.conversation_id, 123);
  const answered = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/events' && r.request().method() === 'POST');
  await op.locator('button.execute').click();
  const res = await answered;
  await op.locator('.live-responses-table .response-col_status').first().waitFor();
  return res;
}

test('/docs: publish a sample event in two clicks, with the session or a token', { skip, timeout: 120_000 }, async (t) => {
  await t.test('logged in to the UI, the session cookie is enough', async (t) => {
    const { context, problems, watch, shot } = await open(t);
    const page = watch(await context.newPage());
    await login(page);
    await page.goto('/docs');
    await docsLoaded(page);
    const res = await publishFromDocs(page);
    assert.equal(res.status(), 202, `publish from /docs: ${res.status()} ${await res.text()}`);
    assert.equal(res.request().headers()['x-requested-with'], 'hookrelay-docs');
    const published = await res.json();
    assert.match(published.id, /^evt_/);
    await page.locator('#operations-events-publishEvent .live-responses-table').getByText('202').first().waitFor();
    await page.locator('#operations-events-publishEvent .live-responses-table').scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(SHOTS, 'docs-publish-session.png') });

    // The event is there for the admin UI too.
    const api = apiClient(context.request);
    const ev = await api('GET', `/api/v1/events/${published.id}`);
    assert.equal(ev.event, 'conversation.started');
    assert.deepEqual(problems, []);
  });

  await t.test('not logged in, Authorize with the token', async (t) => {
    const { context, problems, watch } = await open(t);
    const page = watch(await context.newPage());
    await page.goto('/docs');
    await docsLoaded(page);
    await page.locator('button.authorize').first().click();
    const modal = page.locator('.dialog-ux');
    await modal.locator('input').first().fill(TOKEN);
    await modal.locator('button.authorize').first().click();
    await modal.locator('button.btn-done').first().click();
    const res = await publishFromDocs(page);
    assert.equal(res.status(), 202, `publish after Authorize: ${res.status()} ${await res.text()}`);
    assert.match(res.request().headers()['authorization'] || '', /^Bearer /);
    assert.deepEqual(problems, []);
  });
});

test('/docs: examples per status, receiver tucked away, a way back, dark mode', { skip, timeout: 90_000 }, async (t) => {
  const { context, problems, watch, shot } = await open(t, { colorScheme: 'dark' });
  const page = watch(await context.newPage());
  await page.goto('/docs');
  await docsLoaded(page);

  // The intro describes the product's contract.
  const intro = await page.locator('.information-container').innerText();
  assert.match(intro, /X-Webhook-Signature/);
  assert.doesNotMatch(intro, /seed/i);

  // The receiver's 14 operations are documented, listed last, and collapsed.
  const tags = await page.locator('.opblock-tag').evaluateAll((els) => els.map((e) => e.getAttribute('data-tag')));
  assert.equal(tags.at(-1), 'receiver', `tag order ${tags}`);
  assert.equal(await page.locator('.opblock-tag[data-tag="receiver"]').getAttribute('data-is-open'), 'false');
  assert.equal(await page.locator('[id^="operations-receiver-"]').count(), 0, 'receiver operations are collapsed');
  assert.ok((await page.locator('[id^="operations-webhooks-"]').count()) > 5, 'the admin API is expanded');

  // Error examples fit their status.
  const op = page.locator('#operations-deliveries-retryDelivery');
  await op.locator('.opblock-summary').first().click();
  const responses = op.locator('.responses-table').first();
  await responses.getByText('the webhook is disabled: enable it before redelivering').waitFor();
  await responses.getByText('send Authorization: Bearer <token> or log in').waitFor();
  assert.equal(await responses.getByText('name: is required').count(), 0);

  // Dark mode follows the system; the header leads back to the UI.
  const filter = await page.locator('#swagger-ui').evaluate((el) => getComputedStyle(el).filter);
  assert.match(filter, /invert/);
  await shot(page, 'docs-dark');
  await op.scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(SHOTS, 'docs-dark-retry.png') });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(SHOTS, 'docs-dark-top.png') });
  await page.getByTestId('docs-back-to-ui').click();
  await page.waitForURL((u) => u.pathname === '/login' || u.pathname === '/webhooks');
  assert.deepEqual(problems, []);
});
