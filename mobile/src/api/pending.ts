/**
 * Routes announced for the API but not yet in openapi.json (decisions, orders, positions, performance,
 * the event stream, devices, notification preferences). Written in openapi-typescript's shape so every
 * call goes through the same typed client, with the fields the app reads from the server's work in
 * progress (api/activity, api/devices, tenants/events.py). Each entry is deleted as soon as the
 * regenerated schema.d.ts carries the real route.
 */
import type { components } from './schema';

type Problem = components['schemas']['Problem'];
type Headers = { [name: string]: unknown };
type Json<T> = { headers: Headers; content: { 'application/json': T } };
type ProblemResponse = { headers: Headers; content: { 'application/problem+json': Problem } };
type NoContent = { headers: Headers; content?: never };
type Errors = { 400: ProblemResponse; 401: ProblemResponse; 403: ProblemResponse; 404: ProblemResponse; 422: ProblemResponse };
type NoParameters = { query?: never; header?: never; path?: never; cookie?: never };
type Unused = { put?: never; post?: never; delete?: never; options?: never; head?: never; patch?: never; trace?: never };

/** Exact decimals (money, prices, amounts) travel as strings, e.g. "-12.5". */
export type DecimalText = string;

export interface TradeDecisionView {
  action: string;
  symbol: string;
  confidence: number;
  entry: number | null;
  stopLoss: number | null;
  takeProfit: number | null;
  leverage: number;
  size: number | null;
  reasons: string[];
}

export interface InsightView {
  agent: string;
  symbol: string;
  score: number;
  confidence: number;
  reasons: string[];
}

export interface DecisionView {
  id: string;
  botId: string;
  cycleId: string;
  symbol: string;
  action: string;
  confidence: number;
  brain: string;
  fallback: string | null;
  price: number | null;
  insights: InsightView[];
  proposal: TradeDecisionView | null;
  final: TradeDecisionView | null;
  guardChanges: { kind: string; rule: string; detail: string }[];
  createdAt: string;
}

export interface OrderView {
  id: string;
  botId: string;
  clientOrderId: string;
  symbol: string;
  leg: string;
  side: string;
  type: string;
  amount: DecimalText;
  price: DecimalText | null;
  status: string;
  filled: DecimalText;
  averagePrice: DecimalText | null;
  error: string | null;
  createdAt: string;
}

export interface PositionView {
  id: string;
  botId: string;
  symbol: string;
  side: string;
  status: string;
  amount: DecimalText;
  entryPrice: DecimalText;
  unrealizedPnl: DecimalText;
  realizedPnl: DecimalText;
  openedAt: string;
}

export interface PerformanceView {
  realizedPnl: DecimalText;
  unrealizedPnl: DecimalText;
  returnPct: number | null;
  winRate: number | null;
  openPositions: number;
  closedPositions: number;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface DeviceRequest {
  platform: 'ios' | 'android' | 'web';
  token: string;
  appVersion?: string;
}

export interface DeviceView {
  id: string;
  platform: 'ios' | 'android' | 'web';
  tokenEnding: string;
}

/** Event type (trade.opened, bot.paused, …) -> pushed or not. */
export interface NotificationPreferences {
  push: Record<string, boolean>;
}

/** What GET /v1/stream carries in each event's data. */
export interface EventMessage {
  id: string;
  tenantId: string;
  botId: string | null;
  type: string;
  createdAt: string;
  payload: Record<string, unknown>;
}

type BotPage<T> = {
  parameters: NoParameters;
  get: {
    parameters: {
      query?: { limit?: number; cursor?: string | null; status?: 'open' | 'closed' };
      header?: never;
      path: { bot_id: string };
      cookie?: never;
    };
    requestBody?: never;
    responses: { 200: Json<Page<T>> } & Errors;
  };
} & Unused;

export interface PendingPaths {
  '/v1/bots/{bot_id}/decisions': BotPage<DecisionView>;
  '/v1/bots/{bot_id}/orders': BotPage<OrderView>;
  '/v1/bots/{bot_id}/positions': BotPage<PositionView>;
  '/v1/bots/{bot_id}/performance': {
    parameters: NoParameters;
    get: {
      parameters: { query?: never; header?: never; path: { bot_id: string }; cookie?: never };
      requestBody?: never;
      responses: { 200: Json<PerformanceView> } & Errors;
    };
  } & Unused;
  '/v1/devices': {
    parameters: NoParameters;
    get?: never;
    put?: never;
    post: {
      parameters: NoParameters;
      requestBody: { content: { 'application/json': DeviceRequest } };
      responses: { 200: Json<DeviceView> } & Errors;
    };
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  '/v1/devices/{device_id}': {
    parameters: NoParameters;
    get?: never;
    put?: never;
    post?: never;
    delete: {
      parameters: { query?: never; header?: never; path: { device_id: string }; cookie?: never };
      requestBody?: never;
      responses: { 204: NoContent } & Errors;
    };
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
  '/v1/notification-preferences': {
    parameters: NoParameters;
    get: { parameters: NoParameters; requestBody?: never; responses: { 200: Json<NotificationPreferences> } & Errors };
    put: {
      parameters: NoParameters;
      requestBody: { content: { 'application/json': NotificationPreferences } };
      responses: { 200: Json<NotificationPreferences> } & Errors;
    };
    post?: never;
    delete?: never;
    options?: never;
    head?: never;
    patch?: never;
    trace?: never;
  };
}
