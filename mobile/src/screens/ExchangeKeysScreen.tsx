import { useFocusEffect } from '@react-navigation/native';
import { useCallback, useState } from 'react';
import { Switch, Text, View } from 'react-native';

import { useBackend } from '../api/BackendContext';
import { call } from '../api/client';
import { describeError } from '../api/problem';
import type { components } from '../api/schema';
import { PAPER_EXCHANGE } from '../bots/limits';
import { Banner, Button, Chip, Field, Loading, Muted, Page, Row, SecretField, Section, Title, colors } from '../components/ui';
import { useFormErrors } from '../components/useFormErrors';

type ExchangeKeyView = components['schemas']['ExchangeKeyView'];
type LinkRequest = components['schemas']['LinkExchangeKeyRequest'];
type KeyField = 'exchange' | 'label' | 'apiKey' | 'secret' | 'passphrase' | 'testnet';

const QUICK_EXCHANGES = [PAPER_EXCHANGE, 'bybit', 'binance', 'okx', 'kraken'];

export function ExchangeKeysScreen() {
  const { api } = useBackend();
  const [keys, setKeys] = useState<ExchangeKeyView[] | null>(null);
  const [listError, setListError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [deleteError, setDeleteError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setKeys(await call(api.GET('/v1/exchange-keys')));
      setListError(null);
    } catch (error) {
      setListError(describeError(error));
    }
  }, [api]);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  const remove = async (id: string) => {
    setDeleteError(null);
    try {
      await call(api.DELETE('/v1/exchange-keys/{key_id}', { params: { path: { key_id: id } } }));
      setConfirming(null);
      await load();
    } catch (error) {
      setDeleteError(describeError(error));
    }
  };

  return (
    <Page testID="screen-exchange-keys">
      <Title>Exchange keys</Title>
      <LinkKeyForm onLinked={load} />
      <Section title="Linked keys" testID="key-list">
        <Banner message={listError} />
        <Banner message={deleteError} />
        {keys === null && !listError ? <Loading /> : null}
        {keys?.length === 0 ? <Muted>No keys linked yet.</Muted> : null}
        {keys?.map((key) => (
          <View key={key.id} testID={`key-${key.label}`} style={{ borderTopWidth: 1, borderColor: colors.border, paddingTop: 8, gap: 4 }}>
            <Text style={{ fontWeight: '600' }}>
              {key.label} · {key.exchange}
              {key.testnet ? ' (testnet)' : ''}
            </Text>
            <Muted>API key {key.apiKeyMask || '—'}</Muted>
            {key.ipWhitelisted === false ? <Banner kind="warning" message="No IP whitelist on this key: restrict it to Quorum's addresses at the exchange." testID="key-warning" /> : null}
            {key.warnings.map((warning) => (
              <Banner key={warning} kind="warning" message={warning} testID="key-warning" />
            ))}
            {confirming === key.id ? (
              <Row>
                <Text>Delete “{key.label}”? Bots using it will stop trading.</Text>
                <Button title="Cancel" kind="secondary" onPress={() => setConfirming(null)} testID="delete-cancel" />
                <Button title="Delete" kind="danger" onPress={() => remove(key.id)} testID="delete-confirm" />
              </Row>
            ) : (
              <Row>
                <Button title="Delete" kind="secondary" onPress={() => setConfirming(key.id)} testID={`delete-${key.label}`} />
              </Row>
            )}
          </View>
        ))}
      </Section>
    </Page>
  );
}

function LinkKeyForm({ onLinked }: { onLinked: () => void }) {
  const { api } = useBackend();
  const [exchange, setExchange] = useState(PAPER_EXCHANGE);
  const [label, setLabel] = useState('');
  const [apiKey, setApiKey] = useState('');
  const [secret, setSecret] = useState('');
  const [passphrase, setPassphrase] = useState('');
  const [testnet, setTestnet] = useState(false);
  const [busy, setBusy] = useState(false);
  const [linked, setLinked] = useState<string | null>(null);
  const { fieldErrors, setFieldErrors, banner, showError, clear } = useFormErrors<KeyField>();
  const paper = exchange === PAPER_EXCHANGE;

  const submit = async () => {
    clear();
    setLinked(null);
    const invalid: typeof fieldErrors = {};
    if (!exchange.trim()) invalid.exchange = 'choose an exchange';
    if (!label.trim()) invalid.label = 'enter a label';
    else if (label.length > 80) invalid.label = 'at most 80 characters';
    if (!paper && !apiKey) invalid.apiKey = 'required for a real exchange';
    if (!paper && !secret) invalid.secret = 'required for a real exchange';
    if (Object.keys(invalid).length) return setFieldErrors(invalid);
    setBusy(true);
    try {
      const body = {
        exchange: exchange.trim() as LinkRequest['exchange'],
        label: label.trim(),
        testnet,
        ...(paper ? {} : { apiKey, secret, passphrase: passphrase || null }),
      };
      const key = await call(api.POST('/v1/exchange-keys', { body }));
      setLinked(`Linked “${key.label}”.`);
      setLabel('');
      setApiKey('');
      setSecret('');
      setPassphrase('');
      onLinked();
    } catch (error) {
      showError(error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Section title="Link a key" testID="link-key">
      <Banner
        kind="info"
        testID="key-guidance"
        message="Before you paste a key: create it with trading permission only — disable withdrawals (Quorum refuses keys that can withdraw) — and set an IP whitelist at the exchange so the key works only from Quorum's servers."
      />
      <Banner message={banner} />
      <Banner kind="info" message={linked} testID="key-linked" />
      <Text style={{ fontWeight: '600' }}>Exchange</Text>
      <Row>
        {QUICK_EXCHANGES.map((id) => (
          <Chip key={id} label={id} selected={exchange === id} onPress={() => setExchange(id)} testID={`exchange-${id}`} />
        ))}
      </Row>
      <Field
        name="exchange"
        label="Exchange id"
        value={exchange}
        onChangeText={(text) => setExchange(text.trim().toLowerCase())}
        autoCapitalize="none"
        hint="paper for a simulated account, or any exchange ccxt names (bybit, binance, okx…)"
        error={fieldErrors.exchange}
      />
      <Field name="label" label="Label" value={label} onChangeText={setLabel} placeholder="e.g. Main account" error={fieldErrors.label} />
      {paper ? (
        <Muted>A paper account trades with simulated money and needs no API key.</Muted>
      ) : (
        <>
          <Field name="apiKey" label="API key" value={apiKey} onChangeText={setApiKey} autoCapitalize="none" autoCorrect={false} error={fieldErrors.apiKey} />
          <SecretField name="secret" label="Secret" value={secret} onChangeText={setSecret} autoCapitalize="none" error={fieldErrors.secret} />
          <SecretField name="passphrase" label="Passphrase (if the exchange uses one)" value={passphrase} onChangeText={setPassphrase} autoCapitalize="none" error={fieldErrors.passphrase} />
          <Row>
            <Switch value={testnet} onValueChange={setTestnet} accessibilityLabel="Testnet" testID="field-testnet" />
            <Text>Testnet key</Text>
          </Row>
        </>
      )}
      <Button title="Link key" onPress={submit} busy={busy} testID="link-submit" />
    </Section>
  );
}
