import type { BottomTabScreenProps } from '@react-navigation/bottom-tabs';
import { useFocusEffect } from '@react-navigation/native';
import { useCallback, useEffect, useState } from 'react';
import { Pressable, Text, View } from 'react-native';

import { useBackend } from '../api/BackendContext';
import { call } from '../api/client';
import { type CloseAsk, closeNow, describeClose } from '../api/closes';
import type { DecisionView, PerformanceView, PositionView } from '../api/types';
import { describeError } from '../api/problem';
import type { BotView } from '../bots/botForm';
import { confirmAction } from '../components/confirm';
import { DecisionItem, PositionItem, formatPnl, pnlColor } from '../components/activity';
import { Banner, Button, Loading, Muted, Page, Row, Section, Title, colors } from '../components/ui';
import type { TabParams } from '../navigation/types';
import type { StreamEvent } from '../stream/eventStream';
import { useStreamEvents } from '../stream/StreamContext';

type Props = BottomTabScreenProps<TabParams, 'Home'>;

const LATEST_DECISIONS = 3;

export function HomeScreen({ navigation }: Props) {
  const { api } = useBackend();
  const [bots, setBots] = useState<BotView[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      // The default bot exists once the config has been read; make sure a new account sees it.
      await call(api.GET('/v1/bot-config'));
      const page = await call(api.GET('/v1/bots', { params: { query: { limit: 100 } } }));
      setBots(page.items);
      setError(null);
    } catch (e) {
      setError(describeError(e));
    }
  }, [api]);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  const status = useStreamEvents((event) => {
    const botId = event.message.botId;
    const botChanged = ['bot.status', 'bot.paused', 'bot.silent', 'bot.recovered'].includes(event.type);
    if (botChanged && botId) {
      call(api.GET('/v1/bots/{bot_id}', { params: { path: { bot_id: botId } } })).then(
        (bot) => setBots((current) => current?.map((b) => (b.id === bot.id ? bot : b)) ?? current),
        () => undefined, // the list is re-read when the screen is next shown
      );
    }
  });

  return (
    <Page testID="screen-home">
      <Title>Your bots</Title>
      <Muted testID="stream-status">{status === 'live' ? 'Live updates on' : status === 'connecting' ? 'Connecting to live updates…' : 'Live updates paused, reconnecting…'}</Muted>
      <Banner message={error} />
      {bots === null && !error ? <Loading /> : null}
      {bots?.map((bot) => (
        <BotCard key={bot.id} bot={bot} onChanged={(b) => setBots((list) => list?.map((x) => (x.id === b.id ? b : x)) ?? list)} onOpen={() => navigation.navigate('Activity', { botId: bot.id })} />
      ))}
    </Page>
  );
}

function BotCard({ bot, onChanged, onOpen }: { bot: BotView; onChanged: (bot: BotView) => void; onOpen: () => void }) {
  const { api } = useBackend();
  const [decisions, setDecisions] = useState<DecisionView[]>([]);
  const [positions, setPositions] = useState<PositionView[]>([]);
  const [performance, setPerformance] = useState<PerformanceView | null>(null);
  const [detailError, setDetailError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [closing, setClosing] = useState(false);
  const [closeOutcome, setCloseOutcome] = useState<string | null>(null);
  const path = { bot_id: bot.id };

  const showDetailError = (e: unknown) => setDetailError(describeError(e));

  const loadTrading = useCallback(() => {
    const params = { path: { bot_id: bot.id } };
    Promise.all([
      call(api.GET('/v1/bots/{bot_id}/performance', { params })),
      call(api.GET('/v1/bots/{bot_id}/positions', { params: { ...params, query: { limit: 20, status: 'open' } } })),
    ]).then(([perf, open]) => {
      setPerformance(perf);
      setPositions(open.items);
    }, showDetailError);
  }, [api, bot.id]);

  const loadDecisions = useCallback(() => {
    const params = { path: { bot_id: bot.id }, query: { limit: LATEST_DECISIONS } };
    call(api.GET('/v1/bots/{bot_id}/decisions', { params })).then((page) => setDecisions(page.items), showDetailError);
  }, [api, bot.id]);

  useEffect(() => {
    loadTrading();
    loadDecisions();
  }, [loadTrading, loadDecisions]);

  useStreamEvents((event: StreamEvent) => {
    if (event.message.botId !== bot.id) return;
    if (event.type === 'decision') loadDecisions();
    else if (event.type === 'order' || event.type.startsWith('trade.')) loadTrading();
  });

  const toggle = async () => {
    setBusy(true);
    setActionError(null);
    try {
      const route = bot.active ? '/v1/bots/{bot_id}/stop' : '/v1/bots/{bot_id}/start';
      onChanged(await call(api.POST(route, { params: { path } })));
    } catch (e) {
      setActionError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  const close = async (ask: CloseAsk) => {
    setClosing(true);
    setActionError(null);
    setCloseOutcome(null);
    try {
      const outcome = await closeNow(api, ask);
      setCloseOutcome(describeClose(outcome));
      if (ask.kind === 'bot' && ask.stopBot) {
        onChanged(await call(api.GET('/v1/bots/{bot_id}', { params: { path } })));
      }
    } catch (e) {
      setActionError(describeError(e));
    } finally {
      setClosing(false);
      loadTrading();
    }
  };

  const confirmClosePosition = (p: PositionView) =>
    confirmAction(
      `Close ${p.side} ${p.symbol} now?`,
      `${p.amount} ${p.symbol} is closed at the market price, whatever it is. The bot keeps running.`,
      [{ text: 'Close at market', destructive: true, onPress: () => close({ kind: 'position', positionId: p.id }) }],
    );

  const confirmCloseAll = () =>
    confirmAction(`Close every position of ${bot.name}?`, 'Each is closed at the market price and resting orders are cancelled.', [
      { text: 'Close all, keep running', onPress: () => close({ kind: 'bot', botId: bot.id, stopBot: false }) },
      { text: 'Close all and stop', destructive: true, onPress: () => close({ kind: 'bot', botId: bot.id, stopBot: true }) },
    ]);

  const totalPnl = performance ? Number(performance.realizedPnl) + Number(performance.unrealizedPnl) : null;
  return (
    <Section title={bot.name} testID={`bot-${bot.name}`}>
      <Row>
        <Text testID="bot-status" style={{ color: bot.active ? colors.success : colors.muted, fontWeight: '600' }}>
          {bot.active ? (bot.silentSince ? '⚠ Not running' : '● Running') : bot.pausedReason ? '⏸ Paused' : '○ Stopped'}
        </Text>
        <Muted>
          {bot.mode === 'paper' ? 'Paper' : 'Live'} · {bot.symbols.join(', ')} · {bot.brain}
        </Muted>
      </Row>
      {bot.pausedReason ? <Banner kind="warning" message={bot.pausedReason} /> : null}
      {bot.active && bot.silentSince ? (
        <Banner
          kind="warning"
          testID="bot-silent"
          message={`No trading cycle has completed since ${new Date(bot.silentSince).toLocaleTimeString()}: the bot is not managing its positions until it runs again.`}
        />
      ) : null}
      <Banner message={actionError} />
      <View style={{ flexDirection: 'row', gap: 16 }}>
        <Text>
          PnL <Text style={{ color: pnlColor(totalPnl), fontWeight: '600' }} testID="bot-pnl">{formatPnl(totalPnl)}</Text>
        </Text>
        {performance ? (
          <Muted>
            realized {formatPnl(performance.realizedPnl)} · open {formatPnl(performance.unrealizedPnl)}
            {performance.returnPct !== null ? ` · ${formatPnl(performance.returnPct)}%` : ''}
          </Muted>
        ) : null}
      </View>
      <Text style={{ fontWeight: '600' }}>Open positions</Text>
      {positions.length ? positions.map((p) => <PositionItem key={p.id} position={p} onClose={closing ? undefined : () => confirmClosePosition(p)} />) : <Muted>None</Muted>}
      {closing ? <Muted testID="closing">Closing at market…</Muted> : null}
      <Banner message={closeOutcome} kind="info" testID="close-outcome" />
      <Text style={{ fontWeight: '600' }}>Latest decisions</Text>
      {decisions.length ? decisions.map((d) => <DecisionItem key={d.id} decision={d} detailed={false} />) : <Muted>No decisions yet.</Muted>}
      <Banner message={detailError} kind="warning" testID="bot-detail-error" />
      <Row>
        <Button title={bot.active ? 'Stop' : 'Start'} kind={bot.active ? 'secondary' : 'primary'} onPress={toggle} busy={busy} testID={bot.active ? 'bot-stop' : 'bot-start'} />
        {positions.length ? <Button title="Close all" kind="danger" onPress={confirmCloseAll} busy={closing} testID="bot-close-all" /> : null}
        <Pressable onPress={onOpen} accessibilityRole="link" testID="bot-open-activity">
          <Text style={{ color: colors.primary }}>All activity ›</Text>
        </Pressable>
      </Row>
    </Section>
  );
}
