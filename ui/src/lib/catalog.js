// The event catalogue (GET /event-types), fetched once and shared.
import { api } from './api.js';

/**
 * An entry of the catalogue. The document types `example` and `schema` as bare objects; the UI
 * relies on the one key every example has, `data` (the event's payload).
 * @typedef {Omit<import('./api.js').Schemas['EventType'], 'example' | 'schema'> & {example: {data?: object}, schema?: object}} EventType
 */

/** Used when the catalogue cannot be loaded, so forms still render. @type {EventType[]} */
const FALLBACK = [
  { name: 'message.received', description: 'A visitor sends a new message', example: { data: {} } },
  { name: 'conversation.started', description: 'A visitor starts a new conversation', example: { data: {} } },
];

/** @type {Promise<EventType[]> | null} */
let pending = null;

/** @returns {Promise<EventType[]>} */
export function eventTypes() {
  if (!pending) {
    pending = api
      .GET('/api/v1/event-types')
      .then(({ data }) => (data && data.data && data.data.length ? data.data : FALLBACK))
      .catch((err) => {
        pending = null;
        if (err && err.status === 401) throw err;
        return FALLBACK;
      });
  }
  return pending;
}
