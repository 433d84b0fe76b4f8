/** The refresh token lives in the platform keystore (Keychain / Keystore) through expo-secure-store. */
import * as SecureStore from 'expo-secure-store';

import type { TokenStore } from './session';

const KEY = 'quorum.refreshToken';

export const secureTokenStore: TokenStore = {
  load: () => SecureStore.getItemAsync(KEY),
  save: (token) => SecureStore.setItemAsync(KEY, token),
  clear: () => SecureStore.deleteItemAsync(KEY),
};
