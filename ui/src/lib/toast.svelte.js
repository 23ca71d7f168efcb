// App-wide toasts, rendered by Toasts.svelte in an aria-live region.

let next = 1;

export const toasts = $state([]);

/**
 * @param {string} message
 * @param {'success'|'error'|'info'} [kind]
 */
export function toast(message, kind = 'success') {
  const id = next++;
  toasts.push({ id, message, kind });
  setTimeout(() => dismiss(id), kind === 'error' ? 8000 : 4000);
}

export function dismiss(id) {
  const i = toasts.findIndex((t) => t.id === id);
  if (i >= 0) toasts.splice(i, 1);
}

/** Shows an error toast for anything thrown by the API client. */
export function toastError(err, prefix = '') {
  const msg = err && err.detail ? err.detail : String(err && err.message ? err.message : err);
  toast(prefix ? `${prefix}: ${msg}` : msg, 'error');
}
