/**
 * The app's bot limits must equal the server's: openapi.json is exported from tenants/bot_limits.py,
 * so reading its bot schemas here means a limit changed on the server fails this test until the app
 * follows.
 */
import { readFileSync } from 'fs';
import { join } from 'path';

import { AGENT_NAMES, BOT_DEFAULTS, BOT_LIMITS, BRAINS, MODES, TIMEFRAMES } from '../src/bots/limits';
import { REGISTER_LIMITS } from '../src/screens/RegisterScreen';

const spec = JSON.parse(readFileSync(join(__dirname, '..', '..', 'openapi.json'), 'utf8'));
const schemas = spec.components.schemas;

function bounds(property: any) {
  return { minimum: property.minimum, maximum: property.maximum, minLength: property.minLength, maxLength: property.maxLength, minItems: property.minItems, maxItems: property.maxItems };
}

const strip = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

describe.each(['BotRequest', 'BotPatchRequest'])('%s in openapi.json', (name) => {
  const props = schemas[name].properties;

  test.each([
    ['name', BOT_LIMITS.name],
    ['leverage', BOT_LIMITS.leverage],
    ['riskPerTradePct', BOT_LIMITS.riskPerTradePct],
    ['maxOpenPositions', BOT_LIMITS.maxOpenPositions],
    ['dailyLossLimitPct', BOT_LIMITS.dailyLossLimitPct],
    ['cycleIntervalSeconds', BOT_LIMITS.cycleIntervalSeconds],
    ['brainModel', BOT_LIMITS.brainModel],
    ['timeframes', BOT_LIMITS.timeframes],
  ])('%s has the bounds the app checks', (field, limits) => {
    expect(strip(bounds(props[field]))).toEqual(limits);
  });

  test('symbols: count and pattern', () => {
    const symbols = props.symbols;
    const items = symbols.items ?? symbols.oneOf[0].items;
    expect(strip({ minItems: symbols.minItems, maxItems: symbols.maxItems, pattern: items.pattern })).toEqual(BOT_LIMITS.symbols);
  });

  test('agent weights: names and range', () => {
    const weights = props.agentWeights;
    const value = weights.additionalProperties ?? weights.oneOf[0].additionalProperties;
    expect(weights.propertyNames.enum).toEqual(AGENT_NAMES);
    expect(strip(bounds(value))).toEqual(BOT_LIMITS.agentWeight);
  });
});

test('enums: timeframes, brains and modes', () => {
  expect(schemas.Timeframe.enum).toEqual(TIMEFRAMES);
  expect(schemas.BrainKind.enum).toEqual(BRAINS);
  expect(schemas.BotMode.enum).toEqual(MODES);
});

test('defaults of a new bot', () => {
  const props = schemas.BotRequest.properties;
  expect({
    name: props.name.default,
    cycleIntervalSeconds: props.cycleIntervalSeconds.default,
    dailyLossLimitPct: props.dailyLossLimitPct.default,
    leverage: props.leverage.default,
    riskPerTradePct: props.riskPerTradePct.default,
    maxOpenPositions: props.maxOpenPositions.default,
    brain: schemas.BrainKind.default,
    mode: schemas.BotMode.default,
  }).toEqual(BOT_DEFAULTS);
});

test('registration limits', () => {
  const props = schemas.RegisterRequest.properties;
  expect(strip(bounds(props.email))).toEqual(REGISTER_LIMITS.email);
  expect(strip(bounds(props.password))).toEqual(REGISTER_LIMITS.password);
  expect(strip(bounds(props.tenantName))).toEqual(REGISTER_LIMITS.tenantName);
});
