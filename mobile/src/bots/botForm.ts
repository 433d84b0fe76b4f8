/**
 * The bot-config form: text the user types, checked with the server's limits, turned into the
 * PUT /v1/bot-config body. The cross-field rules match tenants/bots.py (unique symbols, a voting agent,
 * a live bot's real exchange key).
 */
import type { components } from '../api/schema';
import { AGENT_NAMES, BOT_LIMITS, PAPER_EXCHANGE, TIMEFRAMES, type AgentName, type BotMode, type BrainKind, type Timeframe } from './limits';

export type BotView = components['schemas']['BotView'];
export type BotRequest = components['schemas']['BotRequest'];
export type ExchangeKeyView = components['schemas']['ExchangeKeyView'];

export interface BotForm {
  name: string;
  symbols: string; // comma-separated
  timeframes: Timeframe[];
  leverage: string;
  riskPerTradePct: string;
  maxOpenPositions: string;
  dailyLossLimitPct: string;
  cycleIntervalSeconds: string;
  brain: BrainKind;
  brainModel: string;
  mode: BotMode;
  exchangeKeyId: string | null;
  agentWeights: Record<AgentName, string>;
}

export type BotFormErrors = Partial<Record<keyof BotForm, string>>;

export function formFromBot(bot: BotView): BotForm {
  const weights = {} as Record<AgentName, string>;
  for (const agent of AGENT_NAMES) weights[agent] = String(bot.agentWeights[agent] ?? 0);
  return {
    name: bot.name,
    symbols: bot.symbols.join(', '),
    timeframes: [...bot.timeframes],
    leverage: String(bot.leverage),
    riskPerTradePct: String(bot.riskPerTradePct),
    maxOpenPositions: String(bot.maxOpenPositions),
    dailyLossLimitPct: String(bot.dailyLossLimitPct),
    cycleIntervalSeconds: String(bot.cycleIntervalSeconds),
    brain: bot.brain,
    brainModel: bot.brainModel ?? '',
    mode: bot.mode,
    exchangeKeyId: bot.exchangeKeyId,
    agentWeights: weights,
  };
}

type Range = { readonly minimum: number; readonly maximum: number };

function parseNumber(text: string, range: Range, integer: boolean): number | string {
  const trimmed = text.trim();
  if (!/^-?\d+(\.\d+)?$/.test(trimmed) && !/^-?\.\d+$/.test(trimmed)) return 'enter a number';
  const value = Number(trimmed);
  if (integer && !Number.isInteger(value)) return 'enter a whole number';
  if (value < range.minimum || value > range.maximum) return `must be between ${range.minimum} and ${range.maximum}`;
  return value;
}

export function splitSymbols(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The request body, or the message for each field that the server would refuse. */
export function validateBotForm(
  form: BotForm,
  keys: readonly ExchangeKeyView[],
): { body: BotRequest; errors: null } | { body: null; errors: BotFormErrors } {
  const errors: BotFormErrors = {};
  // The number in a field, or 0 with the field's error recorded (the body is only used without errors).
  const numberIn = (field: keyof BotForm & keyof typeof BOT_LIMITS, integer: boolean): number => {
    const result = parseNumber(form[field] as string, BOT_LIMITS[field] as Range, integer);
    if (typeof result === 'number') return result;
    errors[field] = result;
    return 0;
  };

  const name = form.name.trim();
  if (name.length < BOT_LIMITS.name.minLength) errors.name = 'enter a name';
  else if (form.name.length > BOT_LIMITS.name.maxLength) errors.name = `at most ${BOT_LIMITS.name.maxLength} characters`;

  const symbols = splitSymbols(form.symbols);
  const symbolPattern = new RegExp(BOT_LIMITS.symbols.pattern);
  const badSymbol = symbols.find((s) => !symbolPattern.test(s));
  if (symbols.length < BOT_LIMITS.symbols.minItems) errors.symbols = 'enter at least one symbol';
  else if (symbols.length > BOT_LIMITS.symbols.maxItems) errors.symbols = `at most ${BOT_LIMITS.symbols.maxItems} symbols`;
  else if (badSymbol) errors.symbols = `${badSymbol}: use BASE/QUOTE in capitals, e.g. BTC/USDT or BTC/USDT:USDT`;
  else if (new Set(symbols).size !== symbols.length) errors.symbols = 'each symbol may appear only once';

  if (form.timeframes.length < BOT_LIMITS.timeframes.minItems) errors.timeframes = 'choose at least one timeframe';
  else if (form.timeframes.length > BOT_LIMITS.timeframes.maxItems) errors.timeframes = `choose at most ${BOT_LIMITS.timeframes.maxItems}`;
  else if (form.timeframes.some((t) => !TIMEFRAMES.includes(t))) errors.timeframes = 'unknown timeframe';

  const leverage = numberIn('leverage', false);
  const riskPerTradePct = numberIn('riskPerTradePct', false);
  const maxOpenPositions = numberIn('maxOpenPositions', true);
  const dailyLossLimitPct = numberIn('dailyLossLimitPct', false);
  const cycleIntervalSeconds = numberIn('cycleIntervalSeconds', true);

  const brainModel = form.brainModel.trim();
  if (form.brain === 'gpt' && brainModel.length < BOT_LIMITS.brainModel.minLength) errors.brainModel = 'enter a model name';
  else if (brainModel.length > BOT_LIMITS.brainModel.maxLength) errors.brainModel = `at most ${BOT_LIMITS.brainModel.maxLength} characters`;

  const weights: Record<string, number> = {};
  const weightErrors: string[] = [];
  for (const agent of AGENT_NAMES) {
    const result = parseNumber(form.agentWeights[agent], BOT_LIMITS.agentWeight, false);
    if (typeof result === 'string') weightErrors.push(`${agent}: ${result}`);
    else weights[agent] = result;
  }
  if (weightErrors.length) errors.agentWeights = weightErrors.join('; ');
  else if (!Object.values(weights).some((w) => w > 0)) errors.agentWeights = 'at least one agent needs a weight above 0';

  const key = keys.find((k) => k.id === form.exchangeKeyId);
  if (form.exchangeKeyId && !key) errors.exchangeKeyId = 'no exchange key with this id';
  else if (form.mode === 'live' && !key) errors.exchangeKeyId = 'live mode needs a linked exchange key';
  else if (form.mode === 'live' && key?.exchange === PAPER_EXCHANGE) errors.exchangeKeyId = 'live mode needs a real exchange key, not a paper one';

  if (Object.keys(errors).length) return { body: null, errors };
  return {
    errors: null,
    body: {
      name,
      symbols,
      timeframes: form.timeframes,
      leverage,
      riskPerTradePct,
      maxOpenPositions,
      dailyLossLimitPct,
      cycleIntervalSeconds,
      brain: form.brain,
      brainModel: brainModel || null,
      mode: form.mode,
      exchangeKeyId: form.exchangeKeyId,
      agentWeights: weights,
    },
  };
}
