import { call, createBackend } from '../src/api/client';
import { ApiError, OFFLINE_MESSAGE, OfflineError } from '../src/api/problem';
import { FakeApi, MemoryTokenStore, problem } from './fakeApi';

function setup() {
  const server = new FakeApi();
  const store = new MemoryTokenStore();
  const backend = createBackend({ baseUrl: 'http://api.test', store, fetch: server.fetch });
  return { server, store, backend, api: backend.api, session: backend.session };
}

async function signedIn() {
  const ctx = setup();
  const tokens = await call(ctx.api.POST('/v1/auth/login', { body: { email: ctx.server.email, password: ctx.server.password } }));
  await ctx.session.signIn(tokens);
  return ctx;
}

test('the access token stays in memory and only the refresh token is stored', async () => {
  const { store, session } = await signedIn();
  expect(session.accessToken).toBe('access-1');
  expect(store.token).toBe('refresh-1');
});

test('requests carry the access token as a Bearer header', async () => {
  const { api, server } = await signedIn();
  await call(api.GET('/v1/me'));
  expect(server.callsTo('GET', '/v1/me')[0]!.authorization).toBe('Bearer access-1');
});

test('concurrent requests meeting a 401 share one refresh, then succeed with the new token', async () => {
  const { api, server, store } = await signedIn();
  server.expireAccessTokens();
  const [me, keys, bots] = await Promise.all([
    call(api.GET('/v1/me')),
    call(api.GET('/v1/exchange-keys')),
    call(api.GET('/v1/bots')),
  ]);
  expect(me.email).toBe(server.email);
  expect(keys).toEqual([]);
  expect(bots.items).toHaveLength(1);
  expect(server.callsTo('POST', '/v1/auth/refresh')).toHaveLength(1);
  expect(store.token).toBe('refresh-2');
  expect(server.callsTo('GET', '/v1/me').at(-1)!.authorization).toBe('Bearer access-2');
});

test('a retried request after refresh sends its body again', async () => {
  const { api, server } = await signedIn();
  server.expireAccessTokens();
  const key = await call(api.POST('/v1/exchange-keys', { body: { exchange: 'paper', label: 'Paper' } }));
  expect(key.label).toBe('Paper');
  expect(server.callsTo('POST', '/v1/exchange-keys').map((c) => c.body)).toEqual([
    { exchange: 'paper', label: 'Paper' },
    { exchange: 'paper', label: 'Paper' },
  ]);
});

test('a refused refresh token signs the user out and forgets it', async () => {
  const { api, server, store, session } = await signedIn();
  server.expireAccessTokens();
  server.validRefresh.clear();
  const changes: boolean[] = [];
  session.subscribe((s) => changes.push(s));
  await expect(call(api.GET('/v1/me'))).rejects.toMatchObject({ status: 401 });
  expect(session.signedIn).toBe(false);
  expect(store.token).toBeNull();
  expect(changes).toEqual([false]);
});

test('a server error during refresh keeps the refresh token for a later try', async () => {
  const { api, server, store, session } = await signedIn();
  server.expireAccessTokens();
  server.overrides.set('POST /v1/auth/refresh', () => problem(503, 'A backing service is temporarily unavailable; retry shortly.'));
  await expect(call(api.GET('/v1/me'))).rejects.toBeInstanceOf(ApiError);
  expect(store.token).toBe('refresh-1');
  expect(await session.refresh()).toBe(true);
});

test('a stored refresh token restores the session at start-up', async () => {
  const first = await signedIn();
  const again = createBackend({ baseUrl: 'http://api.test', store: first.store, fetch: first.server.fetch });
  expect(await again.session.restore()).toBe(true);
  expect((await call(again.api.GET('/v1/me'))).email).toBe(first.server.email);
});

test('no answer at all is reported as offline', async () => {
  const { api, server } = await signedIn();
  server.online = false;
  const error = await call(api.GET('/v1/me')).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(OfflineError);
  expect((error as Error).message).toBe(OFFLINE_MESSAGE);
});

test('problem-details field errors are keyed by the form field they belong to', async () => {
  const { api, server } = await signedIn();
  server.overrides.set('PUT /v1/bot-config', () =>
    problem(422, 'symbols[1]: has an invalid format; leverage: Expected `number` <= 50.0', [
      { field: 'symbols[1]', message: 'has an invalid format' },
      { field: 'leverage', message: 'Expected `number` <= 50.0' },
      { field: '', message: 'Object contains unknown field `x`' },
    ]),
  );
  const error = (await call(api.PUT('/v1/bot-config', { body: {} })).catch((e: unknown) => e)) as ApiError;
  expect(error.status).toBe(422);
  expect(error.fieldErrors).toEqual({
    symbols: 'item 2: has an invalid format',
    leverage: 'Expected `number` <= 50.0',
    '': 'Object contains unknown field `x`',
  });
  expect(error.message).toBe('Please correct the highlighted fields.');
});

test('a wrong password is answered with the server detail, not retried as a refresh', async () => {
  const { api, server } = setup();
  const error = await call(api.POST('/v1/auth/login', { body: { email: server.email, password: 'nope' } })).catch((e: unknown) => e);
  expect((error as ApiError).message).toBe('Wrong email or password.');
  expect(server.callsTo('POST', '/v1/auth/refresh')).toHaveLength(0);
});
