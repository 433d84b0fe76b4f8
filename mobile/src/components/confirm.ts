/**
 * Ask before doing something that cannot be undone (closing at market). On a phone: the system dialog, Cancel
 * first. On the web, where React Native's Alert shows nothing: the browser's confirm, once per choice, in order.
 */
import { Alert, Platform } from 'react-native';

export interface Choice {
  text: string;
  onPress: () => void;
  destructive?: boolean;
}

export function confirmAction(title: string, message: string, choices: Choice[]): void {
  if (Platform.OS === 'web') {
    const picked = choices.find((c) => globalThis.confirm?.(`${title}\n\n${message}\n\n${c.text}?`));
    picked?.onPress();
    return;
  }
  Alert.alert(title, message, [
    { text: 'Cancel', style: 'cancel' },
    ...choices.map((c) => ({ text: c.text, style: c.destructive ? ('destructive' as const) : ('default' as const), onPress: c.onPress })),
  ]);
}
