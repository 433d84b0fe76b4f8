import type { BottomTabScreenProps } from '@react-navigation/bottom-tabs';
import { useFocusEffect } from '@react-navigation/native';
import { useCallback, useEffect, useState } from 'react';

import { useBackend } from '../api/BackendContext';
import { call } from '../api/client';
import type { DecisionView, OrderView } from '../api/types';
import { describeError } from '../api/problem';
import type { BotView } from '../bots/botForm';
import { DecisionItem, OrderItem, mergeNewest } from '../components/activity';
import { Banner, Button, Chip, Loading, Muted, Page, Row, Section, Title } from '../components/ui';
import type { TabParams } from '../navigation/types';
import { useStreamEvents } from '../stream/StreamContext';

type Props = BottomTabScreenProps<TabParams, 'Activity'>;

const PAGE_SIZE = 20;

interface Paged<T> {
  items: T[];
  nextCursor: string | null;
}

const empty = <T,>(): Paged<T> => ({ items: [], nextCursor: null });

export function ActivityScreen({ route, navigation }: Props) {
  const { api } = useBackend();
  const [bots, setBots] = useState<BotView[]>([]);
  const [error, setError] = useState<string | null>(null);
  const requested = route.params?.botId;
  const botId = requested ?? bots[0]?.id ?? null;

  const loadBots = useCallback(async () => {
    try {
      setBots((await call(api.GET('/v1/bots', { params: { query: { limit: 100 } } }))).items);
    } catch (e) {
      setError(describeError(e));
    }
  }, [api]);

  useFocusEffect(
    useCallback(() => {
      loadBots();
    }, [loadBots]),
  );

  return (
    <Page testID="screen-activity">
      <Title>Activity</Title>
      <Banner message={error} />
      <Row>
        {bots.map((bot) => (
          <Chip key={bot.id} label={bot.name} selected={bot.id === botId} onPress={() => navigation.setParams({ botId: bot.id })} testID={`activity-bot-${bot.name}`} />
        ))}
      </Row>
      {botId ? <BotActivity key={botId} botId={botId} /> : error ? null : <Loading />}
    </Page>
  );
}

function BotActivity({ botId }: { botId: string }) {
  const { api } = useBackend();
  const [decisions, setDecisions] = useState<Paged<DecisionView>>(empty);
  const [orders, setOrders] = useState<Paged<OrderView>>(empty);
  const [decisionError, setDecisionError] = useState<string | null>(null);
  const [orderError, setOrderError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);

  const loadDecisions = useCallback(
    (cursor: string | null) =>
      call(api.GET('/v1/bots/{bot_id}/decisions', { params: { path: { bot_id: botId }, query: { limit: PAGE_SIZE, cursor } } })).then(
        (page) => {
          setDecisions((current) => (cursor ? { items: [...current.items, ...page.items], nextCursor: page.nextCursor } : page));
          setDecisionError(null);
        },
        (e) => setDecisionError(describeError(e)),
      ),
    [api, botId],
  );

  const loadOrders = useCallback(
    (cursor: string | null) =>
      call(api.GET('/v1/bots/{bot_id}/orders', { params: { path: { bot_id: botId }, query: { limit: PAGE_SIZE, cursor } } })).then(
        (page) => {
          setOrders((current) => (cursor ? { items: [...current.items, ...page.items], nextCursor: page.nextCursor } : page));
          setOrderError(null);
        },
        (e) => setOrderError(describeError(e)),
      ),
    [api, botId],
  );

  useEffect(() => {
    Promise.all([loadDecisions(null), loadOrders(null)]).finally(() => setLoading(false));
  }, [loadDecisions, loadOrders]);

  // A new decision or order: read the newest page again and put what is new on top.
  const prependNewest = useCallback(
    (route: 'decisions' | 'orders') => {
      const params = { path: { bot_id: botId }, query: { limit: PAGE_SIZE } };
      if (route === 'decisions') {
        call(api.GET('/v1/bots/{bot_id}/decisions', { params })).then(
          (page) => setDecisions((current) => ({ ...current, items: mergeNewest(page.items, current.items) })),
          (e) => setDecisionError(describeError(e)),
        );
      } else {
        call(api.GET('/v1/bots/{bot_id}/orders', { params })).then(
          (page) => setOrders((current) => ({ ...current, items: mergeNewest(page.items, current.items) })),
          (e) => setOrderError(describeError(e)),
        );
      }
    },
    [api, botId],
  );

  useStreamEvents((event) => {
    if (event.message.botId !== botId) return;
    if (event.type === 'decision') prependNewest('decisions');
    else if (event.type === 'order') prependNewest('orders');
  });

  if (loading) return <Loading />;
  return (
    <>
      <Section title="Decisions" testID="decisions">
        <Banner message={decisionError} />
        {decisions.items.length ? decisions.items.map((d) => <DecisionItem key={d.id} decision={d} />) : <Muted>No decisions yet: they appear here as the bot runs.</Muted>}
        {decisions.nextCursor ? <Button title="Older decisions" kind="secondary" onPress={() => loadDecisions(decisions.nextCursor)} /> : null}
      </Section>
      <Section title="Orders" testID="orders">
        <Banner message={orderError} />
        {orders.items.length ? orders.items.map((o) => <OrderItem key={o.id} order={o} />) : <Muted>No orders yet.</Muted>}
        {orders.nextCursor ? <Button title="Older orders" kind="secondary" onPress={() => loadOrders(orders.nextCursor)} /> : null}
      </Section>
    </>
  );
}
