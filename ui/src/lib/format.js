// Formatting helpers shared by the pages.
import { now } from './clock.svelte.js';

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** "3 minutes ago"; ticks with the shared clock (clock.svelte.js). */
export function timeAgo(iso) {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  now(); // re-render on the clock's ticks; the time itself is read fresh
  const s = Math.round((t - Date.now()) / 1000);
  const abs = Math.abs(s);
  if (abs < 45) return rtf.format(Math.round(s), 'second');
  if (abs < 2700) return rtf.format(Math.round(s / 60), 'minute');
  if (abs < 79200) return rtf.format(Math.round(s / 3600), 'hour');
  if (abs < 2592000) return rtf.format(Math.round(s / 86400), 'day');
  return dateTime(iso);
}

/** Full local date and time, for titles and detail views. */
export function dateTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dtf.format(d);
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

export function bytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** Pretty-prints JSON text; returns null when the text is not JSON. */
export function prettyJSON(text) {
  if (typeof text !== 'string' || !text.trim()) return null;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return null;
  }
}

/**
 * Normalises header maps to sorted [name, value] rows. Captures carry
 * {"Name": ["v1","v2"]}, attempts carry {"Name": "v"}.
 */
export function headerRows(headers) {
  const rows = [];
  for (const [name, value] of Object.entries(headers || {})) {
    if (Array.isArray(value)) for (const v of value) rows.push([name, String(v)]);
    else rows.push([name, String(value)]);
  }
  return rows.sort((a, b) => a[0].localeCompare(b[0]));
}

/** The value of a header, case-insensitively, from either header map shape. */
export function headerValue(headers, name) {
  const want = name.toLowerCase();
  for (const [k, v] of Object.entries(headers || {})) {
    if (k.toLowerCase() === want) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

export function base64ToBytes(b64) {
  const bin = atob(b64 || '');
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A classic 16-bytes-per-line hex dump, truncated to `limit` bytes. */
export function hexDump(data, limit = 4096) {
  const lines = [];
  const n = Math.min(data.length, limit);
  for (let off = 0; off < n; off += 16) {
    const chunk = data.subarray(off, Math.min(off + 16, n));
    const hex = Array.from(chunk, (b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = Array.from(chunk, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${off.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (data.length > n) lines.push(`… ${data.length - n} more bytes`);
  return lines.join('\n');
}

/**
 * A new random signing secret in the Standard Webhooks form (whsec_ + base64
 * of 32 random bytes). X-Webhook-Signature uses the whole string as the key;
 * Standard Webhooks receivers decode the part after the prefix.
 */
export function generateSecret() {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  return `whsec_${btoa(String.fromCharCode(...raw))}`;
}

/** Copies text, also on plain-http origins where navigator.clipboard is missing. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      /* fall back below */
    }
  }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.className = 'visually-hidden';
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

export const EVENT_LABELS = {
  'message.received': 'Message received',
  'conversation.started': 'Conversation started',
};
