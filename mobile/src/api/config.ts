import { Platform } from 'react-native';

/**
 * Where the API is: EXPO_PUBLIC_API_URL when the build sets it; otherwise the web build talks to its
 * own origin (a reverse proxy serves /v1 beside the app) and a device to a local development server.
 */
export function apiBaseUrl(): string {
  const configured = process.env.EXPO_PUBLIC_API_URL;
  if (configured) return configured.replace(/\/$/, '');
  if (Platform.OS === 'web' && typeof window !== 'undefined') return window.location.origin;
  return 'http://127.0.0.1:8000';
}
