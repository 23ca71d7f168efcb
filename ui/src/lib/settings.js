// The server's settings (GET /settings): what its flags say about delivery timeouts, http://
// URLs, private targets, retries and body limits. Fetched once and shared, so help texts state
// what this server does rather than the defaults.
import { api } from './api.js';

/** @typedef {import('./api.js').Schemas['Settings']} Settings */

/** @type {Promise<Settings | null> | null} */
let pending = null;

/**
 * The settings, or null when they cannot be read (texts then avoid stating them).
 * @returns {Promise<Settings | null>}
 */
export function serverSettings() {
  if (!pending) {
    pending = api
      .GET('/api/v1/settings')
      .then(({ data }) => data)
      .catch(() => {
        pending = null;
        return null;
      });
  }
  return pending;
}

/** @type {[string, number][]} */
const UNITS = [
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
];

/**
 * A span of seconds in words: "3 seconds", "1.5 seconds", "2 minutes", "5 days".
 * @param {number} seconds
 */
export function span(seconds) {
  for (const [unit, size] of UNITS) {
    if (seconds >= size && seconds % size === 0) return words(seconds / size, unit);
  }
  return words(seconds, 'second');
}

/** @param {number} n @param {string} unit */
function words(n, unit) {
  return new Intl.NumberFormat('en', { style: 'unit', unit, unitDisplay: 'long', maximumFractionDigits: 3 }).format(n);
}
