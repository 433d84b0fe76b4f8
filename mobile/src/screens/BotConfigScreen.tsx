import { useFocusEffect } from '@react-navigation/native';
import { useCallback, useState } from 'react';
import { Text } from 'react-native';

import { useBackend } from '../api/BackendContext';
import { call } from '../api/client';
import { ApiError, describeError } from '../api/problem';
import { formFromBot, validateBotForm, type BotForm, type BotFormErrors, type BotView, type ExchangeKeyView } from '../bots/botForm';
import { AGENT_NAMES, BOT_LIMITS, BRAINS, MODES, TIMEFRAMES } from '../bots/limits';
import { Banner, Button, Chip, Field, FieldError, Loading, Muted, Page, Row, Section, Title } from '../components/ui';

const range = (limit: { minimum: number; maximum: number }) => `${limit.minimum} to ${limit.maximum}`;

export function BotConfigScreen() {
  const { api } = useBackend();
  const [bot, setBot] = useState<BotView | null>(null);
  const [keys, setKeys] = useState<ExchangeKeyView[]>([]);
  const [form, setForm] = useState<BotForm | null>(null);
  const [errors, setErrors] = useState<BotFormErrors>({});
  const [banner, setBanner] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      const [current, linked] = await Promise.all([call(api.GET('/v1/bot-config')), call(api.GET('/v1/exchange-keys'))]);
      setBot(current);
      setKeys(linked);
      setForm(formFromBot(current));
      setBanner(null);
    } catch (error) {
      setBanner(describeError(error));
    }
  }, [api]);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  if (!form) {
    return (
      <Page testID="screen-bot-config">
        <Title>Bot configuration</Title>
        <Banner message={banner} />
        {banner ? <Button title="Retry" onPress={load} /> : <Loading />}
      </Page>
    );
  }

  const update = <K extends keyof BotForm>(field: K, value: BotForm[K]) => {
    setForm({ ...form, [field]: value });
    setSaved(null);
  };
  const toggleTimeframe = (tf: (typeof TIMEFRAMES)[number]) =>
    update('timeframes', form.timeframes.includes(tf) ? form.timeframes.filter((t) => t !== tf) : [...form.timeframes, tf]);

  const save = async () => {
    setBanner(null);
    setSaved(null);
    const checked = validateBotForm(form, keys);
    if (checked.errors) {
      setErrors(checked.errors);
      setBanner('Please correct the highlighted fields.');
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      const updated = await call(api.PUT('/v1/bot-config', { body: checked.body }));
      setBot(updated);
      setForm(formFromBot(updated));
      setSaved('Saved.');
    } catch (error) {
      if (error instanceof ApiError) {
        const { '': whole, ...byField } = error.fieldErrors;
        setErrors(byField as BotFormErrors);
        setBanner(whole ?? error.message);
      } else {
        setBanner(describeError(error));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <Page testID="screen-bot-config">
      <Title>Bot configuration</Title>
      {bot ? <Muted>{bot.active ? 'Running' : 'Stopped'} · changes apply from the next cycle</Muted> : null}
      <Banner message={banner} />
      <Banner kind="info" message={saved} testID="bot-saved" />
      <Section title="Market">
        <Field name="name" label="Name" value={form.name} onChangeText={(v) => update('name', v)} maxLength={BOT_LIMITS.name.maxLength + 1} error={errors.name} />
        <Field
          name="symbols"
          label="Symbols"
          value={form.symbols}
          onChangeText={(v) => update('symbols', v.toUpperCase())}
          autoCapitalize="characters"
          hint={`${BOT_LIMITS.symbols.minItems} to ${BOT_LIMITS.symbols.maxItems}, comma-separated: BTC/USDT (spot) or BTC/USDT:USDT (perpetual)`}
          error={errors.symbols}
        />
        <Text style={{ fontWeight: '600' }}>Timeframes ({BOT_LIMITS.timeframes.minItems} to {BOT_LIMITS.timeframes.maxItems})</Text>
        <Row>
          {TIMEFRAMES.map((tf) => (
            <Chip key={tf} label={tf} selected={form.timeframes.includes(tf)} onPress={() => toggleTimeframe(tf)} testID={`timeframe-${tf}`} />
          ))}
        </Row>
        <FieldError name="timeframes" error={errors.timeframes} />
        <Field name="cycleIntervalSeconds" label="Seconds between cycles" value={form.cycleIntervalSeconds} onChangeText={(v) => update('cycleIntervalSeconds', v)} keyboardType="number-pad" hint={range(BOT_LIMITS.cycleIntervalSeconds)} error={errors.cycleIntervalSeconds} />
      </Section>
      <Section title="Risk">
        <Field name="leverage" label="Leverage" value={form.leverage} onChangeText={(v) => update('leverage', v)} keyboardType="decimal-pad" hint={`${range(BOT_LIMITS.leverage)}; 1 = no leverage`} error={errors.leverage} />
        <Field name="riskPerTradePct" label="Risk per trade (%)" value={form.riskPerTradePct} onChangeText={(v) => update('riskPerTradePct', v)} keyboardType="decimal-pad" hint={range(BOT_LIMITS.riskPerTradePct)} error={errors.riskPerTradePct} />
        <Field name="maxOpenPositions" label="Max open positions" value={form.maxOpenPositions} onChangeText={(v) => update('maxOpenPositions', v)} keyboardType="number-pad" hint={range(BOT_LIMITS.maxOpenPositions)} error={errors.maxOpenPositions} />
        <Field name="dailyLossLimitPct" label="Daily loss limit (%)" value={form.dailyLossLimitPct} onChangeText={(v) => update('dailyLossLimitPct', v)} keyboardType="decimal-pad" hint={range(BOT_LIMITS.dailyLossLimitPct)} error={errors.dailyLossLimitPct} />
      </Section>
      <Section title="Decisions">
        <Text style={{ fontWeight: '600' }}>Brain</Text>
        <Row>
          {BRAINS.map((b) => (
            <Chip key={b} label={b === 'rules' ? 'Rules' : 'GPT'} selected={form.brain === b} onPress={() => update('brain', b)} testID={`brain-${b}`} />
          ))}
        </Row>
        <Field name="brainModel" label="GPT model" value={form.brainModel} onChangeText={(v) => update('brainModel', v)} autoCapitalize="none" placeholder="gpt-4o-mini" hint="Used by the GPT brain only" error={errors.brainModel} />
        <Text style={{ fontWeight: '600' }}>Agent weights ({range(BOT_LIMITS.agentWeight)}, at least one above 0)</Text>
        {AGENT_NAMES.map((agent) => (
          <Field key={agent} name={`weight-${agent}`} label={agent} value={form.agentWeights[agent]} onChangeText={(v) => update('agentWeights', { ...form.agentWeights, [agent]: v })} keyboardType="decimal-pad" />
        ))}
        <FieldError name="agentWeights" error={errors.agentWeights} />
      </Section>
      <Section title="Account">
        <Text style={{ fontWeight: '600' }}>Mode</Text>
        <Row>
          {MODES.map((m) => (
            <Chip key={m} label={m === 'paper' ? 'Paper' : 'Live'} selected={form.mode === m} onPress={() => update('mode', m)} testID={`mode-${m}`} />
          ))}
        </Row>
        <Text style={{ fontWeight: '600' }}>Exchange key</Text>
        <Row>
          <Chip label="None" selected={form.exchangeKeyId === null} onPress={() => update('exchangeKeyId', null)} testID="bot-key-none" />
          {keys.map((k) => (
            <Chip key={k.id} label={`${k.label} (${k.exchange})`} selected={form.exchangeKeyId === k.id} onPress={() => update('exchangeKeyId', k.id)} testID={`bot-key-${k.label}`} />
          ))}
        </Row>
        <FieldError name="exchangeKeyId" error={errors.exchangeKeyId} />
        {form.mode === 'live' ? <Banner kind="warning" message="Live mode trades real money with the linked key." /> : null}
      </Section>
      <Button title="Save configuration" onPress={save} busy={busy} testID="bot-save" />
    </Page>
  );
}
