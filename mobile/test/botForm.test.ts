import { formFromBot, validateBotForm, type BotForm } from '../src/bots/botForm';
import { BOT_LIMITS } from '../src/bots/limits';
import { makeBot } from './fakeApi';

const base = (): BotForm => formFromBot(makeBot());
const paperKey = { id: 'k1', exchange: 'paper', label: 'Paper', testnet: false, apiKeyMask: '', canTrade: null, canWithdraw: null, ipWhitelisted: null, warnings: [], createdAt: '2026-01-01T00:00:00Z' };

describe.each([
  ['leverage', BOT_LIMITS.leverage],
  ['riskPerTradePct', BOT_LIMITS.riskPerTradePct],
  ['maxOpenPositions', BOT_LIMITS.maxOpenPositions],
  ['dailyLossLimitPct', BOT_LIMITS.dailyLossLimitPct],
  ['cycleIntervalSeconds', BOT_LIMITS.cycleIntervalSeconds],
] as const)('%s', (field, { minimum, maximum }) => {
  test.each([minimum, maximum])('accepts the limit %p', (value) => {
    expect(validateBotForm({ ...base(), [field]: String(value) }, []).errors).toBeNull();
  });
  test.each([minimum - 0.01, maximum + 1, 'abc', ''])('refuses %p', (value) => {
    expect(validateBotForm({ ...base(), [field]: String(value) }, []).errors?.[field]).toBeTruthy();
  });
});

test('a name of the longest allowed length passes, one more character does not', () => {
  expect(validateBotForm({ ...base(), name: 'x'.repeat(BOT_LIMITS.name.maxLength) }, []).errors).toBeNull();
  expect(validateBotForm({ ...base(), name: 'x'.repeat(BOT_LIMITS.name.maxLength + 1) }, []).errors?.name).toBeTruthy();
});

test('symbols: spot and perpetual forms pass; count limits and malformed ones are refused', () => {
  expect(validateBotForm({ ...base(), symbols: 'BTC/USDT, ETH/USDT:USDT' }, []).errors).toBeNull();
  const many = Array.from({ length: BOT_LIMITS.symbols.maxItems + 1 }, (_, i) => `C${String(i).padStart(2, '0')}/USDT`).join(',');
  expect(validateBotForm({ ...base(), symbols: many }, []).errors?.symbols).toBe(`at most ${BOT_LIMITS.symbols.maxItems} symbols`);
  expect(validateBotForm({ ...base(), symbols: '' }, []).errors?.symbols).toBe('enter at least one symbol');
  expect(validateBotForm({ ...base(), symbols: 'BTCUSDT' }, []).errors?.symbols).toMatch(/BASE\/QUOTE/);
});

test('timeframes: one to four', () => {
  expect(validateBotForm({ ...base(), timeframes: [] }, []).errors?.timeframes).toBeTruthy();
  expect(validateBotForm({ ...base(), timeframes: ['1m', '5m', '15m', '1h', '4h'] }, []).errors?.timeframes).toBeTruthy();
});

test('agent weights: each in [0, 1] and at least one above 0', () => {
  const zero = { technical: '0', fibonacci: '0', gann: '0', sentiment: '0', positions: '0' };
  expect(validateBotForm({ ...base(), agentWeights: zero }, []).errors?.agentWeights).toBe('at least one agent needs a weight above 0');
  expect(validateBotForm({ ...base(), agentWeights: { ...zero, gann: '1.5' } }, []).errors?.agentWeights).toMatch(/gann/);
});

test('the GPT brain needs a model name; the rules brain sends none', () => {
  expect(validateBotForm({ ...base(), brain: 'gpt', brainModel: '' }, []).errors?.brainModel).toBeTruthy();
  expect(validateBotForm({ ...base(), brain: 'rules', brainModel: '' }, []).body?.brainModel).toBeNull();
});

test('live mode refuses a paper key', () => {
  expect(validateBotForm({ ...base(), mode: 'live', exchangeKeyId: 'k1' }, [paperKey]).errors?.exchangeKeyId).toBe(
    'live mode needs a real exchange key, not a paper one',
  );
  expect(validateBotForm({ ...base(), mode: 'paper', exchangeKeyId: 'k1' }, [paperKey]).errors).toBeNull();
});
