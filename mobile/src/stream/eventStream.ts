/**
 * The live feed from GET /v1/stream (server-sent events, Bearer-authenticated, so the XHR-based
 * react-native-sse rather than the browser's EventSource, which cannot send headers). Reconnects with
 * backoff; a 401 refreshes the session first.
 */
import EventSource from 'react-native-sse';

import type { Backend } from '../api/client';
import type { DecisionView, OrderView } from '../api/pending';
import type { components } from '../api/schema';

export type BotView = components['schemas']['BotView'];

export type StreamEvent =
  | { type: 'decision'; data: DecisionView }
  | { type: 'order'; data: OrderView }
  | { type: 'bot'; data: BotView };

export type StreamStatus = 'connecting' | 'live' | 'reconnecting';

type EventName = StreamEvent['type'];
const EVENT_NAMES: EventName[] = ['decision', 'order', 'bot'];

export function openEventStream(
  backend: Backend,
  onEvent: (event: StreamEvent) => void,
  onStatus: (status: StreamStatus) => void = () => {},
): () => void {
  let source: EventSource<EventName> | null = null;
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
    const es = new EventSource<EventName>(`${backend.baseUrl}/v1/stream`, {
      headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' },
      pollingInterval: 2000,
    });
    source = es;
    es.addEventListener('open', () => {
      delay = 1000;
      onStatus('live');
    });
    for (const name of EVENT_NAMES) {
      es.addEventListener(name, (event) => {
        if (!event.data) return;
        try {
          onEvent({ type: name, data: JSON.parse(event.data) } as StreamEvent);
        } catch {
          // A malformed event is skipped; the next list refresh still shows the data.
        }
      });
    }
    es.addEventListener('error', (event) => {
      es.removeAllEventListeners();
      es.close();
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
