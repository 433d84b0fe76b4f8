/** How a decision, an order and a position read in a list (Home and Activity share them). */
import { Text, View } from 'react-native';

import type { DecisionView, OrderView, PositionView } from '../api/pending';
import { Muted, colors } from './ui';

export function formatNumber(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function formatPnl(value: number | null | undefined): string {
  if (value === null || value === undefined) return '—';
  return `${value > 0 ? '+' : ''}${formatNumber(value)}`;
}

export function pnlColor(value: number | null | undefined): string {
  if (!value) return colors.text;
  return value > 0 ? colors.success : colors.danger;
}

function when(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

const ACTION_LABELS: Record<string, string> = {
  WAIT: 'Wait',
  HOLD: 'Hold',
  OPEN_LONG: 'Open long',
  OPEN_SHORT: 'Open short',
  CLOSE: 'Close',
};

export function DecisionItem({ decision, showReasons = true }: { decision: DecisionView; showReasons?: boolean }) {
  return (
    <View testID="decision" style={{ borderTopWidth: 1, borderColor: colors.border, paddingTop: 6, gap: 2 }}>
      <Text style={{ fontWeight: '600' }}>
        {ACTION_LABELS[decision.action] ?? decision.action} · {decision.symbol} · {Math.round(decision.confidence * 100)}% confidence
      </Text>
      <Muted>{when(decision.createdAt)}</Muted>
      {decision.entry !== null ? (
        <Muted>
          entry {formatNumber(decision.entry, 8)} · stop {formatNumber(decision.stopLoss, 8)} · take profit {formatNumber(decision.takeProfit, 8)} · size {formatNumber(decision.size, 8)}
        </Muted>
      ) : null}
      {showReasons
        ? decision.reasons.map((reason, i) => (
            <Text key={i} testID="decision-reason">
              • {reason}
            </Text>
          ))
        : null}
    </View>
  );
}

export function OrderItem({ order }: { order: OrderView }) {
  return (
    <View testID="order" style={{ borderTopWidth: 1, borderColor: colors.border, paddingTop: 6 }}>
      <Text style={{ fontWeight: '600' }}>
        {order.side.toUpperCase()} {formatNumber(order.amount, 8)} {order.symbol} · {order.type} · {order.status}
      </Text>
      <Muted>
        {order.price !== null ? `at ${formatNumber(order.price, 8)} · ` : ''}
        {when(order.createdAt)}
      </Muted>
    </View>
  );
}

export function PositionItem({ position }: { position: PositionView }) {
  return (
    <View testID="position" style={{ flexDirection: 'row', justifyContent: 'space-between' }}>
      <Text>
        {position.side === 'long' ? 'Long' : 'Short'} {formatNumber(position.size, 8)} {position.symbol} @ {formatNumber(position.entryPrice, 8)}
      </Text>
      <Text style={{ color: pnlColor(position.unrealizedPnl) }}>{formatPnl(position.unrealizedPnl)}</Text>
    </View>
  );
}

/** Newest first, each id once: a stream event may repeat an item a page already holds. */
export function mergeNewest<T extends { id: string }>(incoming: T[], current: T[]): T[] {
  const seen = new Set(incoming.map((item) => item.id));
  return [...incoming, ...current.filter((item) => !seen.has(item.id))];
}
