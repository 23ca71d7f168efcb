// What a captured body is, by its Content-Type and its bytes: JSON that parses, JSON that
// does not (flagged), a form (shown as fields), or anything else.

/** The capture's Content-Type header value, as sent ('' without one). */
export function contentType(capture) {
  for (const [name, value] of Object.entries(capture.headers || {})) {
    if (name.toLowerCase() === 'content-type') return String(Array.isArray(value) ? value[0] : value);
  }
  return '';
}

/** The media type alone, lower case: "application/json; charset=utf-8" → "application/json". */
function mediaType(capture) {
  return contentType(capture).split(';')[0].trim().toLowerCase();
}

/**
 * @returns {'json' | 'invalid-json' | 'form' | 'other'}
 */
export function bodyKind(capture) {
  const type = mediaType(capture);
  const text = capture.body_encoding === 'base64' ? null : capture.body || '';
  if (type === 'application/json' || type.endsWith('+json')) {
    if (text === null) return 'invalid-json';
    if (text === '') return 'other';
    try {
      JSON.parse(text);
      return 'json';
    } catch {
      return 'invalid-json';
    }
  }
  if (type === 'application/x-www-form-urlencoded' && text) return 'form';
  return 'other';
}

/** A form body's fields, decoded, each name with its values in order. */
export function formFields(body) {
  /** @type {Record<string, string[]>} */
  const out = {};
  for (const [k, v] of new URLSearchParams(body)) (out[k] ??= []).push(v);
  return out;
}
