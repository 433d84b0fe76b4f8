import { render, screen } from '@testing-library/react-native';

import App from '../App';
import { call, createBackend } from '../src/api/client';
import { FakeApi, MemoryTokenStore } from './fakeApi';
import { settle } from './settle';

/** The whole app against a fake API, optionally signed in already. */
export async function renderApp({ signedIn = true, server = new FakeApi() } = {}) {
  const store = new MemoryTokenStore();
  const backend = createBackend({ baseUrl: 'http://api.test', store, fetch: server.fetch });
  if (signedIn) {
    const tokens = await call(backend.api.POST('/v1/auth/login', { body: { email: server.email, password: server.password } }));
    await store.save(tokens.refreshToken); // restored at start-up, as after an app restart
  }
  render(<App backend={backend} />);
  await screen.findByTestId(signedIn ? 'screen-home' : 'screen-login');
  await settle();
  return { server, store, backend };
}
