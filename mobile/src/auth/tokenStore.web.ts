/**
 * A browser has no keystore (expo-secure-store does nothing on web): the web build keeps the refresh
 * token in sessionStorage, so it survives a reload but not the tab.
 */
import type { TokenStore } from './session';

const KEY = 'quorum.refreshToken';

export const secureTokenStore: TokenStore = {
  load: async () => window.sessionStorage.getItem(KEY),
  save: async (token) => window.sessionStorage.setItem(KEY, token),
  clear: async () => window.sessionStorage.removeItem(KEY),
};
