// Shared set-up of the browser tests: each *.test.mjs file opens its own Chromium on the
// running binary (see browser.test.mjs for the environment), logs in with the admin token
// and watches every page for errors. Tests share one server and database, so each creates
// what it needs and never assumes the database is empty.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const BASE = (process.env.HOOKRELAY_URL || '').replace(/\/$/, '');
export const TOKEN = process.env.HOOKRELAY_TOKEN || '';
const uiDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SHOTS = path.resolve(uiDir, process.env.SCREENSHOT_DIR || '../screenshots');
export const WAIT = 15_000;

/** The skip reason when the environment names no server, else false. */
export const skip = !BASE || !TOKEN ? 'set HOOKRELAY_URL and HOOKRELAY_TOKEN to run the browser test' : false;

/**
 * Launches Chromium and opens a context on the server; closed when the test ends.
 * `problems` collects uncaught exceptions, console errors and 5xx answers of every page
 * opened with `watch`. The browser logs each 4xx response as a console error; tests that
 * provoke one on purpose (401 before login, 422 on validation) are checked by status instead,
 * so those resource-load messages are not problems.
 * @param {import('node:test').TestContext} t
 * @param {{viewport?: {width: number, height: number}, colorScheme?: 'light'|'dark'}} [opts]
 */
export async function open(t, opts = {}) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
  t.after(() => browser.close());
  const context = await browser.newContext({
    viewport: opts.viewport || { width: 1280, height: 900 },
    colorScheme: opts.colorScheme,
    baseURL: BASE,
  });
  context.setDefaultTimeout(WAIT);
  const problems = [];
  /** @param {import('playwright-core').Page} page */
  const watch = (page) => {
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const text = msg.text();
      if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
      problems.push(`console: ${text}`);
    });
    page.on('response', (res) => {
      if (res.status() >= 500) problems.push(`HTTP ${res.status()} ${res.request().method()} ${res.url()}`);
    });
    return page;
  };
  const shot = (page, name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  return { browser, context, problems, watch, shot };
}

/** Logs the page in through the login form and waits for the webhooks page. */
export async function login(page) {
  await page.goto('/login');
  await page.getByTestId('login-token').fill(TOKEN);
  await page.getByTestId('login-submit').click();
  await page.waitForURL(/\/webhooks$/);
}

/**
 * An API caller with the admin token that fails the test on any answer but 2xx.
 * @param {import('playwright-core').APIRequestContext} request
 */
export function apiClient(request) {
  return async (method, url, data) => {
    const res = await request.fetch(url, { method, data, headers: { Authorization: `Bearer ${TOKEN}` } });
    assert.ok(res.ok(), `${method} ${url}: HTTP ${res.status()} ${await res.text()}`);
    return res.status() === 204 ? null : res.json();
  };
}
