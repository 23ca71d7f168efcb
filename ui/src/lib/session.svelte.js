// Whether the browser holds a valid session cookie.
import { api } from './api.js';

export const session = $state({ status: 'checking' }); // checking | in | out

export async function checkSession() {
  try {
    await api.GET('/api/v1/session');
    session.status = 'in';
  } catch (err) {
    // 401 means "not logged in"; anything else (server down) also lands on the
    // login page, which reports the problem when the user tries to log in.
    session.status = 'out';
  }
}

export async function login(token) {
  await api.POST('/api/v1/session', { body: { token } });
  session.status = 'in';
}

export async function logout() {
  try {
    await api.DELETE('/api/v1/session');
  } finally {
    session.status = 'out';
  }
}
