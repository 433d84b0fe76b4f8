/** How a decision, an order and a position read in a list (Home and Activity share them). */
import { Pressable, Text, View } from 'react-native';

import type { DecimalText, DecisionView, OrderView, PositionView } from '../api/types';
import { Muted, colors } from './ui';

export function formatNumber(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '—';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

/** A signed amount for display; the server's exact decimal text is rounded here only to read well. */
export function formatPnl(value: DecimalText | number | null | undefined): string {
  if (value === null || value === undefined) return '—';
  const amount = Number(value);
  if (Number.isNaN(amount)) return String(value);
  return `${amount > 0 ? '+' : ''}${formatNumber(amount)}`;
}

export function pnlColor(value: DecimalText | number | null | undefined): string {
  const amount = Number(value ?? 0);
  if (!amount) return colors.text;
  return amount > 0 ? colors.success : colors.danger;
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

export function DecisionItem({ decision, detailed = true }: { decision: DecisionView; detailed?: boolean }) {
  const trade = decision.final ?? decision.proposal;
  const reasons = trade?.reasons.length ? trade.reasons : decision.insights.flatMap((i) => i.reasons.map((r) => `${i.agent}: ${r}`));
  return (
    <View testID="decision" style={{ borderTopWidth: 1, borderColor: colors.border, paddingTop: 6, gap: 2 }}>
      <Text style={{ fontWeight: '600' }}>
        {ACTION_LABELS[decision.action] ?? decision.action} · {decision.symbol} · {Math.round(decision.confidence * 100)}% confidence
      </Text>
      <Muted>
        {when(decision.createdAt)} · {decision.brain} brain{decision.fallback ? ` (fallback: ${decision.fallback})` : ''}
      </Muted>
      {detailed && trade?.entry != null ? (
        <Muted>
          entry {formatNumber(trade.entry, 8)} · stop {formatNumber(trade.stopLoss, 8)} · take profit {formatNumber(trade.takeProfit, 8)} · size {formatNumber(trade.size, 8)}
        </Muted>
      ) : null}
      {detailed
        ? reasons.map((reason, i) => (
            <Text key={i} testID="decision-reason">
              • {reason}
            </Text>
          ))
        : null}
      {detailed
        ? decision.guardChanges.map((change, i) => (
            <Text key={`g${i}`} style={{ color: colors.warning }}>
              Risk guard {change.kind} ({change.rule}): {change.detail}
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
        {order.side.toUpperCase()} {order.amount} {order.symbol} · {order.type} · {order.status}
      </Text>
      <Muted>
        {order.averagePrice ? `filled ${order.filled} at ${order.averagePrice} · ` : order.price ? `at ${order.price} · ` : ''}
        {when(order.createdAt)}
      </Muted>
      {order.error ? <Text style={{ color: colors.danger }}>{order.error}</Text> : null}
    </View>
  );
}

export function PositionItem({ position, onClose }: { position: PositionView; onClose?: () => void }) {
  return (
    <View testID="position" style={{ flexDirection: 'row', justifyContent: 'space-between', alignItems: 'center', gap: 8 }}>
      <Text style={{ flexShrink: 1 }}>
        {position.side === 'long' ? 'Long' : 'Short'} {position.amount} {position.symbol} @ {position.entryPrice}
      </Text>
      <Text style={{ color: pnlColor(position.unrealizedPnl) }}>{formatPnl(position.unrealizedPnl)}</Text>
      {onClose ? (
        <Pressable
          onPress={onClose}
          accessibilityRole="button"
          accessibilityLabel={`Close ${position.side} ${position.symbol} now`}
          testID="position-close"
          hitSlop={8}
        >
          <Text style={{ color: colors.danger, fontWeight: '600' }}>Close</Text>
        </Pressable>
      ) : null}
    </View>
  );
}

/** Newest first, each id once: a reloaded first page may overlap what is already shown. */
export function mergeNewest<T extends { id: string }>(incoming: T[], current: T[]): T[] {
  const seen = new Set(incoming.map((item) => item.id));
  return [...incoming, ...current.filter((item) => !seen.has(item.id))];
}
