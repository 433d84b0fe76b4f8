import { createContext, useCallback, useContext, useSyncExternalStore, type ReactNode } from 'react';

import type { Backend } from './client';

const BackendContext = createContext<Backend | null>(null);

export function BackendProvider({ backend, children }: { backend: Backend; children: ReactNode }) {
  return <BackendContext.Provider value={backend}>{children}</BackendContext.Provider>;
}

export function useBackend(): Backend {
  const backend = useContext(BackendContext);
  if (!backend) throw new Error('useBackend outside BackendProvider');
  return backend;
}

/** Whether the session holds an access token, re-rendering when that changes. */
export function useSignedIn(): boolean {
  const { session } = useBackend();
  const subscribe = useCallback((changed: () => void) => session.subscribe(changed), [session]);
  return useSyncExternalStore(subscribe, () => session.signedIn);
}
