/**
 * Routes announced for the API but not yet in openapi.json (decisions, orders, positions, performance,
 * the event stream, devices, notification preferences). Written in openapi-typescript's shape so every
 * call goes through the same typed client; each entry is deleted as soon as the regenerated schema.d.ts
 * carries the real route (the client type below then takes the generated one).
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

export type DecisionAction = 'WAIT' | 'HOLD' | 'OPEN_LONG' | 'OPEN_SHORT' | 'CLOSE';

export interface DecisionView {
  id: string;
  botId: string;
  symbol: string;
  action: DecisionAction;
  confidence: number;
  reasons: string[];
  entry: number | null;
  stopLoss: number | null;
  takeProfit: number | null;
  size: number | null;
  createdAt: string;
}

export interface OrderView {
  id: string;
  botId: string;
  symbol: string;
  side: 'buy' | 'sell';
  type: string;
  status: string;
  amount: number;
  price: number | null;
  clientOrderId: string;
  createdAt: string;
}

export interface PositionView {
  symbol: string;
  side: 'long' | 'short';
  size: number;
  entryPrice: number;
  unrealizedPnl: number;
}

export interface PerformanceView {
  realizedPnl: number;
  unrealizedPnl: number;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface DeviceRequest {
  token: string;
  platform: 'ios' | 'android' | 'web';
}

export interface NotificationPreferences {
  decisions: boolean;
  orders: boolean;
  botStatus: boolean;
}

type BotPage<T> = {
  parameters: NoParameters;
  get: {
    parameters: { query?: { limit?: number; cursor?: string | null }; header?: never; path: { bot_id: string }; cookie?: never };
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
      responses: { 201: NoContent; 204: NoContent } & Errors;
    };
    delete: {
      parameters: NoParameters;
      requestBody: { content: { 'application/json': DeviceRequest } };
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
