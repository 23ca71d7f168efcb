// The event catalogue (GET /event-types), fetched once and shared.
import { api } from './api.js';

// Used when the catalogue cannot be loaded, so forms still render.
const FALLBACK = [
  { name: 'message.received', description: 'A visitor sends a new message', example: { data: {} } },
  { name: 'conversation.started', description: 'A visitor starts a new conversation', example: { data: {} } },
];

let pending = null;

/** @returns {Promise<{name: string, description: string, schema?: object, example: {data: object}}[]>} */
export function eventTypes() {
  if (!pending) {
    pending = api
      .get('/event-types')
      .then((r) => (r && r.data && r.data.length ? r.data : FALLBACK))
      .catch((err) => {
        pending = null;
        if (err && err.status === 401) throw err;
        return FALLBACK;
      });
  }
  return pending;
}
