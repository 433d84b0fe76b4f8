import { fireEvent, screen, waitFor } from '@testing-library/react-native';

import { OFFLINE_MESSAGE } from '../src/api/problem';
import { problem } from './fakeApi';
import { renderApp } from './renderApp';
import { settle } from './settle';

jest.mock('../src/stream/eventStream', () => ({ openEventStream: () => () => {} }));

test('signing in with the right password opens Home', async () => {
  const { server } = await renderApp({ signedIn: false });
  fireEvent.changeText(screen.getByTestId('field-email'), server.email);
  fireEvent.changeText(screen.getByTestId('field-password'), server.password);
  fireEvent.press(screen.getByTestId('login-submit'));
  expect(await screen.findByTestId('screen-home')).toBeTruthy();
  await settle();
});

test('a wrong password shows the server message', async () => {
  const { server } = await renderApp({ signedIn: false });
  fireEvent.changeText(screen.getByTestId('field-email'), server.email);
  fireEvent.changeText(screen.getByTestId('field-password'), 'wrong one');
  fireEvent.press(screen.getByTestId('login-submit'));
  expect(await screen.findByText('Wrong email or password.')).toBeTruthy();
});

test('offline sign-in says so instead of failing silently', async () => {
  const { server } = await renderApp({ signedIn: false });
  server.online = false;
  fireEvent.changeText(screen.getByTestId('field-email'), server.email);
  fireEvent.changeText(screen.getByTestId('field-password'), server.password);
  fireEvent.press(screen.getByTestId('login-submit'));
  expect(await screen.findByText(OFFLINE_MESSAGE)).toBeTruthy();
});

test('registration refuses a short password before asking the server', async () => {
  const { server } = await renderApp({ signedIn: false });
  fireEvent.press(screen.getByTestId('go-register'));
  await screen.findByTestId('screen-register');
  fireEvent.changeText(screen.getByTestId('field-email'), 'new@example.com');
  fireEvent.changeText(screen.getByTestId('field-password'), 'short');
  fireEvent.press(screen.getByTestId('register-submit'));
  expect((await screen.findByTestId('error-password')).props.children).toBe('at least 10 characters');
  expect(server.callsTo('POST', '/v1/auth/register')).toHaveLength(0);
});

test("the server's field errors appear next to the registration fields", async () => {
  const { server } = await renderApp({ signedIn: false });
  server.overrides.set('POST /v1/auth/register', () =>
    problem(422, 'email: must be an email address', [{ field: 'email', message: 'must be an email address' }]),
  );
  fireEvent.press(screen.getByTestId('go-register'));
  await screen.findByTestId('screen-register');
  fireEvent.changeText(screen.getByTestId('field-email'), 'new@example.com');
  fireEvent.changeText(screen.getByTestId('field-password'), 'long enough password');
  fireEvent.press(screen.getByTestId('register-submit'));
  expect((await screen.findByTestId('error-email')).props.children).toBe('must be an email address');
});

test('registering signs the new account in', async () => {
  const { server } = await renderApp({ signedIn: false });
  fireEvent.press(screen.getByTestId('go-register'));
  await screen.findByTestId('screen-register');
  fireEvent.changeText(screen.getByTestId('field-email'), 'new@example.com');
  fireEvent.changeText(screen.getByTestId('field-password'), 'long enough password');
  fireEvent.press(screen.getByTestId('register-submit'));
  await screen.findByTestId('screen-home');
  await settle();
  expect(server.callsTo('POST', '/v1/auth/register')[0]!.body).toEqual({ email: 'new@example.com', password: 'long enough password', tenantName: null });
});

test('a stored refresh token skips the login screen, and logout returns to it', async () => {
  const { server, store } = await renderApp({ signedIn: true });
  fireEvent.press(screen.getByTestId('tab-settings'));
  await screen.findByText(`${server.email} · Ada`);
  fireEvent.press(screen.getByTestId('logout'));
  await screen.findByTestId('screen-login');
  expect(store.token).toBeNull();
  await waitFor(() => expect(server.callsTo('POST', '/v1/auth/logout')).toHaveLength(1));
});

test('the password can be shown while typing it, and hidden again', async () => {
  await renderApp({ signedIn: false });
  const field = () => screen.getByTestId('field-password');
  expect(field().props.secureTextEntry).toBe(true);
  fireEvent.press(screen.getByLabelText('Show password'));
  expect(field().props.secureTextEntry).toBe(false);
  fireEvent.press(screen.getByLabelText('Hide password'));
  expect(field().props.secureTextEntry).toBe(true);
});
