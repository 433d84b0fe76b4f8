/**
 * The live feed from GET /v1/stream (server-sent events, Bearer-authenticated, so the XHR-based
 * react-native-sse rather than the browser's EventSource, which cannot send headers). An event says
 * what happened to which bot; screens then re-read that bot's data through the typed client.
 * When the server ends a stream, the library reopens it with Last-Event-ID (the server replays what was
 * missed); after an error this module reconnects with backoff, refreshing the session first on a 401.
 */
import EventSource from 'react-native-sse';

import type { Backend } from '../api/client';
import type { EventType } from '../api/types';

/**
 * An event's data. openapi.json describes the stream only as `text/event-stream`, so this is typed by
 * hand from the server's EventMessage (tenants/events.py); the app reads only `botId` and `type`.
 */
export interface EventMessage {
  id: string;
  tenantId: string;
  botId: string | null;
  type: EventType;
  createdAt: string;
  payload: Record<string, unknown>;
}

/** The event types the app reacts to. */
export const STREAM_EVENT_TYPES = [
  'decision',
  'order',
  'trade.opened',
  'trade.closed',
  'trade.stop_loss',
  'trade.take_profit',
  'trade.skipped',
  'bot.status',
  'bot.paused',
  'bot.silent',
  'bot.recovered',
] as const satisfies readonly EventType[];

export type StreamEventType = (typeof STREAM_EVENT_TYPES)[number];

export interface StreamEvent {
  type: StreamEventType;
  message: EventMessage;
}

export type StreamStatus = 'connecting' | 'live' | 'reconnecting';

export function openEventStream(
  backend: Backend,
  onEvent: (event: StreamEvent) => void,
  onStatus: (status: StreamStatus) => void = () => {},
): () => void {
  let source: EventSource<StreamEventType> | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let delay = 1000;
  let stopped = false;

  const reconnect = () => {
    if (stopped) return;
    onStatus('reconnecting');
    timer = setTimeout(connect, delay);
    delay = Math.min(delay * 2, 30_000);
  };

  function connect() {
    const token = backend.session.accessToken;
    if (stopped || !token) return;
    onStatus('connecting');
    const headers = { Authorization: `Bearer ${token}` }; // the library adds Accept: text/event-stream
    const es = new EventSource<StreamEventType>(`${backend.baseUrl}/v1/stream`, { headers, pollingInterval: 2000 });
    source = es;
    es.addEventListener('open', () => {
      delay = 1000;
      onStatus('live');
    });
    for (const type of STREAM_EVENT_TYPES) {
      es.addEventListener(type, (event) => {
        if (!event.data) return;
        try {
          onEvent({ type, message: JSON.parse(event.data) as EventMessage });
        } catch {
          // A malformed event is skipped; the screens re-read their data on the next one.
        }
      });
    }
    es.addEventListener('error', (event) => {
      es.removeAllEventListeners();
      // After dispatching an error the library schedules its own reopen (with the old token); closing
      // once this dispatch has returned cancels that, so only the reconnect below runs.
      void Promise.resolve().then(() => es.close());
      if (source === es) source = null;
      if ('xhrStatus' in event && event.xhrStatus === 401) {
        backend.session.refresh().then((ok) => (ok ? reconnect() : undefined), reconnect);
      } else {
        reconnect();
      }
    });
  }

  connect();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    source?.removeAllEventListeners();
    source?.close();
  };
}
