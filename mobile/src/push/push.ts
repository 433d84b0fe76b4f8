/**
 * Push notifications: the permission flow, registering this device's token with the API, and opening
 * the bot a tapped notification is about. The server sends through Firebase Cloud Messaging
 * (workers/notify), so the app registers the native device token, not an Expo push token.
 */
import Constants from 'expo-constants';
import * as Device from 'expo-device';
import * as Notifications from 'expo-notifications';
import { Platform } from 'react-native';

import { call, type Api } from '../api/client';

export type PushOutcome =
  | { status: 'registered'; token: string }
  | { status: 'denied' }
  | { status: 'unsupported'; reason: string };

let registeredDevice: string | null = null;

export function pushSupported(): boolean {
  return Platform.OS !== 'web' && Device.isDevice;
}

export async function pushPermission(): Promise<Notifications.PermissionStatus | 'unsupported'> {
  if (!pushSupported()) return 'unsupported';
  return (await Notifications.getPermissionsAsync()).status;
}

/** Ask for permission (once; the OS remembers a refusal), then register the device token with the API. */
export async function enablePush(api: Api): Promise<PushOutcome> {
  if (Platform.OS === 'web') return { status: 'unsupported', reason: 'Push notifications need the Quorum app on a phone.' };
  if (!Device.isDevice) return { status: 'unsupported', reason: 'Push notifications need a real device, not a simulator.' };
  if (Platform.OS === 'android') {
    await Notifications.setNotificationChannelAsync('default', {
      name: 'Trading activity',
      importance: Notifications.AndroidImportance.HIGH,
    });
  }
  let { status } = await Notifications.getPermissionsAsync();
  if (status !== 'granted') status = (await Notifications.requestPermissionsAsync()).status;
  if (status !== 'granted') return { status: 'denied' };
  const token = String((await Notifications.getDevicePushTokenAsync()).data);
  const platform = Platform.OS === 'ios' ? 'ios' : 'android';
  const appVersion = Constants.expoConfig?.version ?? '';
  const device = await call(api.POST('/v1/devices', { body: { platform, token, appVersion } }));
  registeredDevice = device.id;
  return { status: 'registered', token };
}

/** On logout: this device should stop receiving the account's notifications. */
export async function unregisterPush(api: Api): Promise<void> {
  if (!registeredDevice) return;
  const deviceId = registeredDevice;
  registeredDevice = null;
  await call(api.DELETE('/v1/devices/{device_id}', { params: { path: { device_id: deviceId } } }));
}

/** The bot a notification is about: its data carries `botId`. */
export function botIdOf(response: Notifications.NotificationResponse): string | null {
  const botId = response.notification.request.content.data?.botId;
  return typeof botId === 'string' && botId ? botId : null;
}

/**
 * Calls `openBot` for a tapped notification, including the one that launched the app.
 * Returns the unsubscribe function.
 */
export function onNotificationTap(openBot: (botId: string) => void): () => void {
  if (Platform.OS === 'web') return () => {};
  Notifications.setNotificationHandler({
    handleNotification: async () => ({ shouldShowBanner: true, shouldShowList: true, shouldPlaySound: false, shouldSetBadge: false }),
  });
  const open = (response: Notifications.NotificationResponse | null) => {
    const botId = response ? botIdOf(response) : null;
    if (botId) openBot(botId);
  };
  Notifications.getLastNotificationResponseAsync().then(open, () => undefined);
  const subscription = Notifications.addNotificationResponseReceivedListener(open);
  return () => subscription.remove();
}
