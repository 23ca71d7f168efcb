// Whether the browser holds a valid session cookie.
import { api } from './api.js';

export const session = $state({ status: 'checking' }); // checking | in | out

export async function checkSession() {
  try {
    // The probe answers 200 {authenticated: false} when logged out, so loading the login
    // page logs no failed request.
    const { data } = await api.GET('/api/v1/session');
    session.status = data.authenticated ? 'in' : 'out';
  } catch (err) {
    // The server is down or refused a stale credential: the login page reports any problem
    // when the user tries to log in.
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
