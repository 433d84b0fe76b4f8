import { configure } from '@testing-library/react-native';

// The native edges the app touches: push permissions and tokens come from the OS, which tests play.
// Each test can change what they answer (e.g. a refused permission) through the jest.fn handles.
jest.mock('expo-notifications', () => ({
  getPermissionsAsync: jest.fn(async () => ({ status: 'undetermined' })),
  requestPermissionsAsync: jest.fn(async () => ({ status: 'granted' })),
  getDevicePushTokenAsync: jest.fn(async () => ({ type: 'ios', data: 'apns-device-token' })),
  setNotificationChannelAsync: jest.fn(async () => null),
  setNotificationHandler: jest.fn(),
  getLastNotificationResponseAsync: jest.fn(async () => null),
  addNotificationResponseReceivedListener: jest.fn(() => ({ remove: jest.fn() })),
  AndroidImportance: { HIGH: 4 },
}));
jest.mock('expo-device', () => ({ isDevice: true }));

// A screen's first render loads and transforms its modules, which on a busy 2-core machine takes
// seconds: waits are for the app to get somewhere, not a speed test, so they allow plenty of time
// (a wait that succeeds returns as soon as it does; only a failing one uses the whole timeout).
configure({ asyncUtilTimeout: 30_000 });
