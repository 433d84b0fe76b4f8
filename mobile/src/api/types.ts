/** Short names for the generated wire types the screens use (all from openapi.json via schema.d.ts). */
import type { components } from './schema';

type Schemas = components['schemas'];

export type BotView = Schemas['BotView'];
export type DecisionView = Schemas['DecisionView'];
export type OrderView = Schemas['OrderView'];
export type PositionView = Schemas['PositionView'];
export type PerformanceView = Schemas['PerformanceView'];
export type NotificationPreferences = Schemas['NotificationPreferencesView'];
export type EventType = Schemas['EventType'];
/** Exact decimals (money, prices, amounts) travel as strings, e.g. "-12.5". */
export type DecimalText = string;
