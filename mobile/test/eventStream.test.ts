/**
 * The stream client over react-native-sse, with XMLHttpRequest played by a fake that answers as the
 * server's GET /v1/stream does (text/event-stream, 401 once the token has expired).
 */
import { call, createBackend } from '../src/api/client';
import { openEventStream, type StreamEvent, type StreamStatus } from '../src/stream/eventStream';
import { FakeApi, MemoryTokenStore } from './fakeApi';

class FakeXhr {
  static DONE = 4;
  static LOADING = 3;
  static HEADERS_RECEIVED = 2;
  static opened: FakeXhr[] = [];
  url = '';
  headers: Record<string, string> = {};
  readyState = 0;
  status = 0;
  responseText = '';
  timeout = 0;
  aborted = false;
  onreadystatechange: (() => void) | null = null;
  onerror: (() => void) | null = null;
  open(_method: string, url: string) {
    this.url = url;
    FakeXhr.opened.push(this);
  }
  setRequestHeader(name: string, value: string) {
    this.headers[name] = value;
  }
  send() {}
  abort() {
    this.aborted = true;
  }
  /** The server answers (more of) the stream. */
  answer(status: number, text: string, readyState = FakeXhr.LOADING) {
    this.status = status;
    this.readyState = readyState;
    this.responseText += text;
    this.onreadystatechange?.();
  }
}

const realXhr = global.XMLHttpRequest;
beforeEach(() => {
  FakeXhr.opened = [];
  (global as { XMLHttpRequest: unknown }).XMLHttpRequest = FakeXhr;
  jest.useFakeTimers();
});
afterEach(() => {
  (global as { XMLHttpRequest: unknown }).XMLHttpRequest = realXhr;
  jest.useRealTimers();
});

async function signedInBackend() {
  const server = new FakeApi();
  const backend = createBackend({ baseUrl: 'http://api.test', store: new MemoryTokenStore(), fetch: server.fetch });
  await backend.session.signIn(await call(backend.api.POST('/v1/auth/login', { body: { email: server.email, password: server.password } })));
  return { server, backend };
}

const decisionEvent = (id: string) =>
  `id: ${id}\nevent: decision\ndata: ${JSON.stringify({ id, tenantId: 't1', botId: 'b1', type: 'decision', createdAt: '2026-01-01T00:00:00Z', payload: {} })}\n\n`;

test('opens the stream with the access token and hands on each event with its bot', async () => {
  const { backend } = await signedInBackend();
  const events: StreamEvent[] = [];
  const statuses: StreamStatus[] = [];
  const stop = openEventStream(backend, (e) => events.push(e), (s) => statuses.push(s));
  await jest.advanceTimersByTimeAsync(1000);
  const xhr = FakeXhr.opened[0]!;
  expect(xhr.url).toBe('http://api.test/v1/stream');
  expect(xhr.headers.Authorization).toBe('Bearer access-1');
  xhr.answer(200, ': keep-alive\n\n');
  xhr.answer(200, decisionEvent('e1'));
  expect(statuses.at(-1)).toBe('live');
  expect(events.map((e) => [e.type, e.message.botId])).toEqual([['decision', 'b1']]);
  stop();
});

test('a 401 refreshes the session and reconnects with the new token', async () => {
  const { backend, server } = await signedInBackend();
  const stop = openEventStream(backend, () => {});
  await jest.advanceTimersByTimeAsync(1000);
  server.expireAccessTokens();
  FakeXhr.opened[0]!.answer(401, '{"status":401}', FakeXhr.DONE);
  await jest.advanceTimersByTimeAsync(5000);
  expect(server.callsTo('POST', '/v1/auth/refresh')).toHaveLength(1);
  // One new connection, with the new token; the refused one is not retried with the old token.
  expect(FakeXhr.opened.map((x) => x.headers.Authorization)).toEqual(['Bearer access-1', 'Bearer access-2']);
  stop();
});

test('a stream the server ends is reopened with Last-Event-ID, so the server replays what was missed', async () => {
  const { backend } = await signedInBackend();
  const stop = openEventStream(backend, () => {});
  await jest.advanceTimersByTimeAsync(1000);
  FakeXhr.opened[0]!.answer(200, decisionEvent('e7'), FakeXhr.DONE);
  await jest.advanceTimersByTimeAsync(3000);
  expect(FakeXhr.opened).toHaveLength(2);
  expect(FakeXhr.opened[1]!.headers['Last-Event-ID']).toBe('e7');
  stop();
});

test('a network error reconnects with backoff; stopping ends it for good', async () => {
  const { backend } = await signedInBackend();
  const statuses: StreamStatus[] = [];
  const stop = openEventStream(backend, () => {}, (s) => statuses.push(s));
  await jest.advanceTimersByTimeAsync(1000);
  FakeXhr.opened[0]!.onerror?.();
  expect(statuses.at(-1)).toBe('reconnecting');
  await jest.advanceTimersByTimeAsync(2000);
  expect(FakeXhr.opened).toHaveLength(2);
  stop();
  await jest.advanceTimersByTimeAsync(60_000);
  expect(FakeXhr.opened).toHaveLength(2);
});
