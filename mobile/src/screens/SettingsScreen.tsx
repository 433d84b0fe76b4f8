import { useFocusEffect } from '@react-navigation/native';
import { useCallback, useEffect, useState } from 'react';
import { Switch, Text, View } from 'react-native';

import { useBackend } from '../api/BackendContext';
import { call } from '../api/client';
import { closeNow, describeClose } from '../api/closes';
import type { NotificationPreferences } from '../api/types';
import { describeError } from '../api/problem';
import type { components } from '../api/schema';
import { confirmAction } from '../components/confirm';
import { Banner, Button, Muted, Page, SecretField, Section, Title } from '../components/ui';
import { enablePush, pushPermission, unregisterPush } from '../push/push';

type Me = components['schemas']['MeResponse'];

// How each pushable event type (tenants/devices.py) reads in the app; a type the server adds later
// shows under its own name until it gets a label here.
const EVENT_LABELS: Record<string, string> = {
  'trade.opened': 'A trade opened',
  'trade.closed': 'A trade closed',
  'trade.stop_loss': 'A stop-loss was hit',
  'trade.take_profit': 'A take-profit was hit',
  'trade.skipped': 'A trade was skipped (e.g. insufficient funds)',
  'close.failed': 'A position could not be closed',
  'bot.paused': 'A bot was paused (e.g. the exchange refused its key)',
  'bot.status': 'A bot started or stopped',
  'bot.silent': 'A running bot stopped completing its cycles',
  'bot.recovered': 'A bot that had stopped runs again',
  'budget.exhausted': "The day's AI budget ran out",
  'summary.daily': 'Daily summary',
  'webhook.disabled': 'A webhook was switched off',
};

export function SettingsScreen() {
  const { api, session } = useBackend();
  const [me, setMe] = useState<Me | null>(null);
  const [prefs, setPrefs] = useState<NotificationPreferences | null>(null);
  const [prefsError, setPrefsError] = useState<string | null>(null);
  const [push, setPush] = useState<string | null>(null);
  const [pushMessage, setPushMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setMe(await call(api.GET('/v1/me')));
    } catch (e) {
      setError(describeError(e));
    }
    try {
      setPrefs(await call(api.GET('/v1/notification-preferences')));
      setPrefsError(null);
    } catch (e) {
      setPrefsError(describeError(e));
    }
  }, [api]);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  useEffect(() => {
    pushPermission().then(setPush, () => setPush('unsupported'));
  }, []);

  const setPreference = async (type: string, value: boolean) => {
    if (!prefs) return;
    const next = { push: { ...prefs.push, [type]: value } };
    setPrefs(next);
    try {
      setPrefs(await call(api.PUT('/v1/notification-preferences', { body: next })));
      setPrefsError(null);
    } catch (e) {
      setPrefs(prefs);
      setPrefsError(describeError(e));
    }
  };

  const turnOnPush = async () => {
    setPushMessage(null);
    try {
      const outcome = await enablePush(api);
      if (outcome.status === 'registered') setPushMessage('This device will receive notifications.');
      else if (outcome.status === 'denied') setPushMessage('Notifications are off for Quorum. Turn them on in the system settings.');
      else setPushMessage(outcome.reason);
      setPush(await pushPermission());
    } catch (e) {
      setPushMessage(describeError(e));
    }
  };

  const [panicPassword, setPanicPassword] = useState('');
  const [panicBusy, setPanicBusy] = useState(false);
  const [panicOutcome, setPanicOutcome] = useState<string | null>(null);
  const [panicError, setPanicError] = useState<string | null>(null);

  const panic = async () => {
    setPanicBusy(true);
    setPanicError(null);
    setPanicOutcome(null);
    try {
      const outcome = await closeNow(api, { kind: 'all', password: panicPassword });
      setPanicPassword('');
      setPanicOutcome(`Every bot is stopped.\n${describeClose(outcome)}`);
    } catch (e) {
      setPanicError(describeError(e));
    } finally {
      setPanicBusy(false);
    }
  };

  const confirmPanic = () =>
    confirmAction('Close everything now?', 'Every open position of every bot is closed at the market price, and every bot is stopped.', [
      { text: 'Close everything', destructive: true, onPress: panic },
    ]);

  const logout = async () => {
    setBusy(true);
    // Tell the server when it can be reached; the tokens are forgotten here in every case.
    await unregisterPush(api).catch(() => undefined);
    await call(api.POST('/v1/auth/logout')).catch(() => undefined);
    await session.signOut();
  };

  return (
    <Page testID="screen-settings">
      <Title>Settings</Title>
      <Banner message={error} />
      <Section title="Account">
        <Muted testID="account-email">{me ? `${me.email} · ${me.tenant.name}` : '…'}</Muted>
      </Section>
      <Section title="Notifications" testID="notifications">
        <Muted testID="push-status">
          {push === 'unsupported' ? 'Push notifications need the Quorum app on a phone.' : push === 'granted' ? 'Push notifications are allowed.' : 'Push notifications are off.'}
        </Muted>
        {push !== 'unsupported' && push !== null ? <Button title="Enable push notifications" kind="secondary" onPress={turnOnPush} testID="push-enable" /> : null}
        <Banner kind="info" message={pushMessage} testID="push-message" />
        <Banner message={prefsError} testID="prefs-error" />
        {prefs
          ? Object.entries(prefs.push).map(([type, pushed]) => (
              <View key={type} style={{ flexDirection: 'row', alignItems: 'center', justifyContent: 'space-between', gap: 8 }}>
                <Text style={{ flex: 1 }}>{EVENT_LABELS[type] ?? type}</Text>
                <Switch value={pushed} onValueChange={(v) => setPreference(type, v)} accessibilityLabel={EVENT_LABELS[type] ?? type} testID={`pref-${type}`} />
              </View>
            ))
          : null}
      </Section>
      <Section title="Close everything" testID="panic">
        <Muted>When the market turns: every position of every bot closed at market, every bot stopped. Your password confirms it.</Muted>
        <SecretField name="panicPassword" label="Password" value={panicPassword} onChangeText={setPanicPassword} autoComplete="current-password" />
        <Button title="Close everything" kind="danger" onPress={confirmPanic} busy={panicBusy} disabled={!panicPassword} testID="panic-close-all" />
        <Banner message={panicError} testID="panic-error" />
        <Banner kind="info" message={panicOutcome} testID="panic-outcome" />
      </Section>
      <Button title="Log out" kind="danger" onPress={logout} busy={busy} testID="logout" />
    </Page>
  );
}
