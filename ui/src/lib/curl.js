// Rebuilds a captured request as a curl command that replays it byte for byte.

// curl.js stands alone (no Svelte runes), so the browser test can run the command it builds.

/** Quotes a string for a POSIX shell. */
export function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

// Hop-by-hop or recomputed by curl itself; sending them again would be wrong.
const SKIP = new Set(['host', 'content-length', 'connection', 'accept-encoding', 'transfer-encoding']);

function queryString(q) {
  if (!q) return '';
  if (typeof q === 'string') return q.replace(/^\?/, '');
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x);
  return p.toString();
}

/** The full URL the capture was sent to. */
export function captureURL(capture, binUrl) {
  const base = new URL(binUrl, location.href);
  const path = capture.path || '/';
  let url = path.startsWith('/inspect/') ? base.origin + path : base.href.replace(/\/$/, '') + (path === '/' ? '' : path);
  const qs = queryString(capture.query);
  if (qs) url += `?${qs}`;
  return url;
}

// Each flag shares its line with its value; lines are joined by ` \` continuations, so the
// command reads one option a line and still pastes as one command.
export function curlCommand(capture, binUrl) {
  const lines = [`curl -X ${capture.method} ${shellQuote(captureURL(capture, binUrl))}`];
  for (const [name, value] of Object.entries(capture.headers || {})) {
    if (SKIP.has(name.toLowerCase())) continue;
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`-H ${shellQuote(`${name}: ${v}`)}`);
  }
  const joined = () => lines.join(' \\\n  ');
  const hasBody = capture.body && capture.body.length > 0;
  if (!hasBody) return joined();
  if (capture.body_encoding === 'base64') {
    lines.push('--data-binary @-');
    return `printf %s ${shellQuote(capture.body)} | base64 -d | ${joined()}`;
  }
  lines.push(`--data-binary ${shellQuote(capture.body)}`);
  return joined();
}

export { queryString };
