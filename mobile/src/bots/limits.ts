/**
 * The server's limits on a bot's configuration (tenants/bot_limits.py), mirrored so forms can refuse a
 * value before sending it. test/botLimits.test.ts compares every number here with openapi.json.
 */
import type { components } from '../api/schema';

export type Timeframe = components['schemas']['Timeframe'];
export type BrainKind = components['schemas']['BrainKind'];
export type BotMode = components['schemas']['BotMode'];
export type AgentName = 'technical' | 'fibonacci' | 'gann' | 'sentiment' | 'positions';

export const TIMEFRAMES: readonly Timeframe[] = ['1m', '5m', '15m', '30m', '1h', '4h', '1d'];
export const BRAINS: readonly BrainKind[] = ['rules', 'gpt'];
export const MODES: readonly BotMode[] = ['paper', 'live'];
export const AGENT_NAMES: readonly AgentName[] = ['technical', 'fibonacci', 'gann', 'sentiment', 'positions'];

export const BOT_LIMITS = {
  name: { minLength: 1, maxLength: 80 },
  symbols: { minItems: 1, maxItems: 20, pattern: '^[A-Z0-9]{2,15}/[A-Z0-9]{2,10}(?::[A-Z0-9]{2,10})?$' },
  timeframes: { minItems: 1, maxItems: 4 },
  leverage: { minimum: 1, maximum: 50 },
  riskPerTradePct: { minimum: 0.1, maximum: 5 },
  maxOpenPositions: { minimum: 1, maximum: 20 },
  dailyLossLimitPct: { minimum: 0.5, maximum: 50 },
  cycleIntervalSeconds: { minimum: 60, maximum: 86_400 },
  agentWeight: { minimum: 0, maximum: 1 },
  brainModel: { minLength: 1, maxLength: 80 },
} as const;

export const BOT_DEFAULTS = {
  name: 'My bot',
  cycleIntervalSeconds: 900,
  dailyLossLimitPct: 3,
  leverage: 1,
  riskPerTradePct: 1,
  maxOpenPositions: 1,
  brain: 'rules' as BrainKind,
  mode: 'paper' as BotMode,
} as const;

/** The exchange id of a paper account (tenants/exchange_catalog.py). */
export const PAPER_EXCHANGE = 'paper';
