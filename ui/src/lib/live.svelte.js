// The admin change stream: ONE WebSocket per tab (GET /api/v1/changes), opened after login,
// shared by every page. The server pushes, at most a few times a second, which webhooks,
// events, deliveries and API keys changed; a page subscribes with onChange, says which of
// those it shows, and refetches (debounced) when one changes. After a reconnect every
// subscriber refetches, since what changed while the socket was closed was not sent.

import { api, sessionEnded, wsURL } from './api.js';

/** @typedef {import('./api-types').components['schemas']['ChangeMessage']} ChangeMessage */
/** @typedef {'webhooks' | 'events' | 'deliveries' | 'api_keys'} Kind */

/** connected: the socket is open; lost: it has been closed for a while (shown to the user). */
export const live = $state({ connected: false, lost: false });

/** @type {WebSocket | null} */
let socket = null;
let running = false;
let attempts = 0;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let retryTimer;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let lostTimer;

/** How long the socket may be down before the page says so: a quick reconnect stays silent. */
const LOST_AFTER_MS = 2000;

/**
 * @typedef {object} Subscriber
 * @property {(m: ChangeMessage) => boolean} wants
 * @property {() => unknown} refetch
 * @property {number} debounce
 * @property {ReturnType<typeof setTimeout> | undefined} timer
 * @property {boolean} busy
 * @property {boolean} again
 */

/** @type {Set<Subscriber>} */
const subscribers = new Set();

/** Opens the stream (once; later calls do nothing until stopLive). */
export function startLive() {
  if (running) return;
  running = true;
  attempts = 0;
  connect();
}

/** Closes the stream (logout). */
export function stopLive() {
  running = false;
  clearTimeout(retryTimer);
  clearTimeout(lostTimer);
  socket?.close(1000);
  socket = null;
  live.connected = false;
  live.lost = false;
}

function connect() {
  if (!running) return;
  const ws = new WebSocket(wsURL('/changes'));
  socket = ws;
  ws.onopen = () => {
    attempts = 0;
    clearTimeout(lostTimer);
    live.connected = true;
    live.lost = false;
    // Whatever changed before this socket opened was not sent: everyone refetches.
    for (const s of subscribers) schedule(s);
  };
  ws.onmessage = (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    if (msg?.type !== 'changes') return;
    for (const s of subscribers) if (s.wants(msg)) schedule(s);
  };
  ws.onclose = (e) => {
    if (socket !== ws) return;
    socket = null;
    live.connected = false;
    if (!running) return;
    clearTimeout(lostTimer);
    lostTimer = setTimeout(() => (live.lost = running && !live.connected), LOST_AFTER_MS);
    // Back off 0.5 s, 1 s, 2 s … up to 15 s, with jitter so many tabs do not come back at once.
    const delay = Math.min(15000, 500 * 2 ** attempts) * (0.75 + Math.random() / 2);
    attempts++;
    // Ask whether the session is still on before reconnecting, and wait for the answer: a
    // socket closed for a credential that ended (1008: logout in another tab, a revoked key)
    // sends the tab to the login page, which stops the stream. Reconnecting meanwhile would
    // only be refused, a failed handshake in the console each time. If the answer does not
    // come (the server is down), the back-off goes on.
    const reconnect = () => {
      if (running && socket === null) retryTimer = setTimeout(connect, delay);
    };
    api
      .GET('/api/v1/session')
      .then(({ data }) => {
        if (data?.authenticated === false) sessionEnded();
        else reconnect();
      })
      .catch(reconnect);
  };
}

/** @param {Subscriber} s */
function schedule(s) {
  if (s.timer !== undefined) return;
  s.timer = setTimeout(() => run(s), s.debounce);
}

/** @param {Subscriber} s */
async function run(s) {
  s.timer = undefined;
  if (s.busy) {
    s.again = true; // one more refetch once this one is done, for what it may have missed
    return;
  }
  s.busy = true;
  try {
    await s.refetch();
  } catch {
    /* the page shows its own errors; the next notice tries again */
  } finally {
    s.busy = false;
    if (s.again && subscribers.has(s)) {
      s.again = false;
      schedule(s);
    }
  }
}

/**
 * Calls refetch when a change message is one the page wants, at most once per `debounce` ms
 * and never twice at once, and after every reconnect. Returns the unsubscribe function: call
 * it from an $effect so leaving the page ends the subscription.
 * @param {(m: ChangeMessage) => boolean} wants
 * @param {() => unknown} refetch
 * @param {{debounce?: number}} [opts]
 */
export function onChange(wants, refetch, { debounce = 250 } = {}) {
  /** @type {Subscriber} */
  const s = { wants, refetch, debounce, timer: undefined, busy: false, again: false };
  subscribers.add(s);
  return () => {
    clearTimeout(s.timer);
    subscribers.delete(s);
  };
}

/**
 * Whether the message says something of this kind changed: any of it (no ids given), or one of
 * the ids (a kind with many changes names them all).
 * @param {ChangeMessage} m
 * @param {Kind} kind
 * @param {(string | undefined | null)[]} [ids]
 */
export function changed(m, kind, ids) {
  const c = m[kind];
  if (!c) return false;
  if (c.many || !ids) return true;
  return ids.some((id) => id && c.ids?.includes(id));
}
