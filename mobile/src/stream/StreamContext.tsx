/** One stream per signed-in app; screens subscribe to the events they show. */
import { createContext, useContext, useEffect, useEffectEvent, useRef, useState, type ReactNode } from 'react';

import { useBackend } from '../api/BackendContext';
import { openEventStream, type StreamEvent, type StreamStatus } from './eventStream';

type Handler = (event: StreamEvent) => void;

interface StreamValue {
  status: StreamStatus;
  subscribe(handler: Handler): () => void;
}

const StreamContext = createContext<StreamValue | null>(null);

export function StreamProvider({ children }: { children: ReactNode }) {
  const backend = useBackend();
  const handlers = useRef(new Set<Handler>());
  const [status, setStatus] = useState<StreamStatus>('connecting');

  useEffect(
    () =>
      openEventStream(
        backend,
        (event) => handlers.current.forEach((handler) => handler(event)),
        setStatus,
      ),
    [backend],
  );

  const [value] = useState(() => ({
    subscribe(handler: Handler) {
      handlers.current.add(handler);
      return () => {
        handlers.current.delete(handler);
      };
    },
  }));

  return <StreamContext.Provider value={{ status, subscribe: value.subscribe }}>{children}</StreamContext.Provider>;
}

/** Calls `handler` for every stream event while the component is mounted. */
export function useStreamEvents(handler: Handler): StreamStatus {
  const stream = useContext(StreamContext);
  const onEvent = useEffectEvent(handler);
  useEffect(() => stream?.subscribe((event) => onEvent(event)), [stream]);
  return stream?.status ?? 'connecting';
}
