// Thin client for the Hookrelay JSON API (/api/v1).
//
// Every request carries the session cookie (same-origin) and the
// X-Requested-With header, which the server requires for cookie-authenticated
// writes as CSRF protection. Errors come back as RFC 9457 problem documents
// and are thrown as ApiError so forms can show them beside their fields.

const BASE = '/api/v1';

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, or 0 when the server could not be reached
   * @param {{title?: string, detail?: string, type?: string, errors?: {field: string, message: string}[]}} problem
   */
  constructor(status, problem = {}) {
    const detail = problem.detail || problem.title || (status ? `Request failed (${status})` : 'Cannot reach the server');
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.title = problem.title || '';
    this.type = problem.type || '';
    this.detail = detail;
    /** @type {Record<string, string>} field name → message */
    this.fieldErrors = {};
    for (const e of problem.errors || []) {
      if (!e || !e.field) continue;
      const prev = this.fieldErrors[e.field];
      this.fieldErrors[e.field] = prev ? `${prev}; ${e.message}` : e.message;
    }
  }
}

let onUnauthorized = () => {};

/** Called whenever the server answers 401 outside the session endpoints. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

async function readProblem(res) {
  const type = res.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    try {
      return await res.json();
    } catch {
      /* fall through to a generic problem */
    }
  }
  return { title: res.statusText, detail: res.statusText ? `${res.status} ${res.statusText}` : '' };
}

/**
 * @param {string} method
 * @param {string} path path under /api/v1, e.g. "/webhooks"
 * @param {unknown} [body] sent as JSON when defined
 * @param {{signal?: AbortSignal, headers?: Record<string,string>}} [opts]
 */
export async function request(method, path, body, opts = {}) {
  const headers = {
    Accept: 'application/json, application/problem+json',
    'X-Requested-With': 'hookrelay',
    ...opts.headers,
  };
  if (body !== undefined) headers['Content-Type'] = 'application/json';

  let res;
  try {
    res = await fetch(BASE + path, {
      method,
      credentials: 'same-origin',
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: opts.signal,
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, { detail: 'Cannot reach the Hookrelay server. Check that it is running.' });
  }

  if (!res.ok) {
    const problem = await readProblem(res);
    if (res.status === 401 && !path.startsWith('/session')) onUnauthorized();
    throw new ApiError(res.status, problem);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** Builds "?a=1&b=2" from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const api = {
  get: (path, opts) => request('GET', path, undefined, opts),
  post: (path, body, opts) => request('POST', path, body ?? {}, opts),
  patch: (path, body, opts) => request('PATCH', path, body, opts),
  del: (path, opts) => request('DELETE', path, undefined, opts),
};

/** The WebSocket URL for a path under /api/v1, on the page's own host. */
export function wsURL(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${BASE}${path}`;
}
