// Client for the Hookrelay JSON API (/api/v1), typed from the OpenAPI document.
//
// `api` is an openapi-fetch client over the `paths` that `make openapi` generates into
// api-types.d.ts, so `npm run check` fails when a call names a path, method, parameter, body
// field or response field the server does not document.
//
// Every request carries the session cookie (same-origin) and the X-Requested-With header, which
// the server requires for cookie-authenticated writes as CSRF protection. A failed call rejects
// with ApiError (built from the RFC 9457 problem document, so forms can show errors beside their
// fields); a successful one resolves to `{ data }`.
import createClient from 'openapi-fetch';

/** @typedef {import('./api-types').paths} Paths */
/** Schemas of the API, e.g. `Schemas['Webhook']`. @typedef {import('./api-types').components['schemas']} Schemas */

const BASE = '/api/v1';

export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, or 0 when the server could not be reached
   * @param {Partial<Schemas['Problem']>} problem the RFC 9457 body, as far as the server sent one
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

/**
 * Called whenever the server answers 401 outside the session endpoints.
 * @param {() => void} fn
 */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** Tells the page its session has ended, as a 401 would (the session probe answers 200). */
export function sessionEnded() {
  onUnauthorized();
}

/** @param {Response} res */
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
 * One typed method of the client, e.g. `api.GET('/api/v1/webhooks/{id}', { params: { path: { id } } })`.
 * openapi-fetch's own signature infers the options object as a type parameter, which turns off
 * TypeScript's excess-property check: a misspelt optional body field (`{ enable: true }`) would
 * pass (openapi-ts/openapi-typescript#1769). Taking the options at their declared type keeps
 * every key of `params` and `body` checked against the document.
 * @template {import('openapi-typescript-helpers').HttpMethod} M
 * @typedef {<P extends import('openapi-typescript-helpers').PathsWithMethod<Paths, M>>(
 *   url: P,
 *   ...init: import('openapi-typescript-helpers').RequiredKeysOf<import('openapi-fetch').MaybeOptionalInit<Paths[P], M>> extends never
 *     ? [import('openapi-fetch').MaybeOptionalInit<Paths[P], M>?]
 *     : [import('openapi-fetch').MaybeOptionalInit<Paths[P], M>]
 * ) => Promise<import('openapi-fetch').FetchResponse<Paths[P][M], {}, import('openapi-typescript-helpers').MediaType>>} Call
 */

/** @typedef {{GET: Call<'get'>, POST: Call<'post'>, PATCH: Call<'patch'>, DELETE: Call<'delete'>}} Api */

/** @type {import('openapi-fetch').Client<Paths>} */
const client = createClient({
  credentials: 'same-origin',
  headers: {
    Accept: 'application/json, application/problem+json',
    'X-Requested-With': 'hookrelay',
  },
});

// Failures become exceptions here, in one place, so every call site reads `const { data } = await
// api.GET(…)` and the error branch of openapi-fetch's result never reaches a page.
client.use({
  onError({ error }) {
    if (error instanceof Error && error.name === 'AbortError') return error;
    return new ApiError(0, { detail: 'Cannot reach the Hookrelay server. Check that it is running.' });
  },
  async onResponse({ response, schemaPath }) {
    if (response.ok) return undefined;
    const problem = await readProblem(response);
    if (response.status === 401 && !schemaPath.startsWith(`${BASE}/session`)) onUnauthorized();
    throw new ApiError(response.status, problem);
  },
});

// The same client seen through the stricter signatures above. Its responses are always parsed as
// JSON, because no call passes `parseAs`.
export const api = /** @type {Api} */ (client);

/**
 * The WebSocket URL for a path under /api/v1, on the page's own host.
 * @param {string} path
 */
export function wsURL(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${BASE}${path}`;
}
