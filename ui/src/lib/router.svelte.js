// A small history-API router. The server answers index.html for every
// non-API path, so deep links such as /webhooks/wh_123 load the SPA directly.

const state = $state({ path: location.pathname, search: location.search });

function sync() {
  state.path = location.pathname;
  state.search = location.search;
}

window.addEventListener('popstate', sync);

export const route = {
  get path() {
    return state.path;
  },
  get query() {
    return new URLSearchParams(state.search);
  },
};

/** Changes the page without a reload. */
export function navigate(to, { replace = false } = {}) {
  const url = new URL(to, location.href);
  const target = url.pathname + url.search + url.hash;
  if (target === location.pathname + location.search + location.hash) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', target);
  sync();
  if (!replace) window.scrollTo(0, 0);
}

/** Replaces the query string of the current page (filters), keeping history clean. */
export function setQuery(params) {
  const q = new URLSearchParams(state.search);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  navigate(state.path + (s ? `?${s}` : ''), { replace: true });
}

/**
 * Matches "/webhooks/:id" against a path; returns the params or null.
 * @param {string} pattern
 * @param {string} path
 */
export function match(pattern, path) {
  const want = pattern.split('/').filter(Boolean);
  const got = path.split('/').filter(Boolean);
  if (want.length !== got.length) return null;
  const params = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(':')) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}

// Paths the Go server owns; links to them are ordinary page loads.
const serverPaths = ['/api/', '/docs', '/openapi.json', '/inspect/', '/healthz', '/readyz', '/metrics'];

/** Document-level click handler: turns same-origin <a href="/…"> clicks into router navigation. */
export function interceptLinks(event) {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = event.target instanceof Element ? event.target.closest('a[href]') : null;
  if (!a || a.target || a.hasAttribute('download') || a.getAttribute('rel') === 'external') return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  if (serverPaths.some((p) => url.pathname === p.replace(/\/$/, '') || url.pathname.startsWith(p))) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
}
