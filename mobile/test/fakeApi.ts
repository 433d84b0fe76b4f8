/**
 * An in-memory stand-in for the Quorum API that speaks its wire format (camelCase JSON, RFC 9457
 * problem details, rotating refresh tokens), for screen and client tests. The real server is exercised
 * by the end-to-end test.
 */
import type { DecisionView, NotificationPreferences, OrderView, PerformanceView, PositionView } from '../src/api/types';
import type { components } from '../src/api/schema';
import type { StreamEvent, StreamEventType } from '../src/stream/eventStream';

type BotView = components['schemas']['BotView'];
type ExchangeKeyView = components['schemas']['ExchangeKeyView'];
type FieldError = { field: string; message: string };

export interface RecordedCall {
  method: string;
  path: string;
  body: unknown;
  authorization: string | null;
  idempotencyKey: string | null;
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

export const problem = (status: number, detail: string, errors: FieldError[] = []) =>
  new Response(JSON.stringify({ type: 'about:blank', title: 'Error', status, detail, errors }), {
    status,
    headers: { 'content-type': 'application/problem+json' },
  });

export function makeBot(overrides: Partial<BotView> = {}): BotView {
  return {
    id: '11111111-1111-4111-8111-111111111111',
    name: 'My bot',
    active: false,
    isDefault: true,
    mode: 'paper',
    brain: 'rules',
    brainModel: null,
    symbols: ['BTC/USDT'],
    timeframes: ['15m', '1h'],
    leverage: 1,
    riskPerTradePct: 1,
    maxOpenPositions: 1,
    dailyLossLimitPct: 3,
    cycleIntervalSeconds: 900,
    agentWeights: { technical: 0.4, sentiment: 0.25, fibonacci: 0.2, gann: 0.15, positions: 0 },
    exchangeKeyId: null,
    pausedReason: null,
    silentSince: null,
    createdAt: '2026-01-01T00:00:00Z',
    updatedAt: '2026-01-01T00:00:00Z',
    ...overrides,
  };
}

export function makeDecision(overrides: Partial<DecisionView> & { reasons?: string[] } = {}): DecisionView {
  const { reasons = ['RSI crossed up from oversold', 'price above the 0.618 retracement'], ...rest } = overrides;
  const action = rest.action ?? 'OPEN_LONG';
  const symbol = rest.symbol ?? 'BTC/USDT';
  const confidence = rest.confidence ?? 0.72;
  return {
    id: 'd1',
    botId: makeBot().id,
    cycleId: 'c1',
    symbol,
    action,
    confidence,
    requestedBrain: 'rules',
    brain: 'rules',
    fallback: null,
    fallbackDetail: '',
    model: null,
    promptTokens: 0,
    completionTokens: 0,
    cachedTokens: 0,
    costUsd: '0',
    latencyMs: 1.5,
    price: 64000,
    insights: [],
    proposal: null,
    validation: [],
    final: { action, symbol, confidence, entry: 64000, stopLoss: 62500, takeProfit: 67000, leverage: 1, size: 0.01, reasons },
    guardChanges: [],
    createdAt: '2026-01-01T00:15:00Z',
    ...rest,
  };
}

export function makeOrder(overrides: Partial<OrderView> = {}): OrderView {
  return {
    id: 'o1',
    botId: makeBot().id,
    cycleId: 'c1',
    decisionId: 'd1',
    clientOrderId: 'q-1',
    exchange: 'paper',
    symbol: 'BTC/USDT',
    leg: 'entry',
    side: 'buy',
    type: 'market',
    amount: '0.01',
    price: null,
    stopLoss: '62500',
    takeProfit: '67000',
    leverage: '1',
    reduceOnly: false,
    status: 'filled',
    exchangeOrderId: 'x-1',
    filled: '0.01',
    averagePrice: '64000',
    fee: '0.064',
    error: null,
    createdAt: '2026-01-01T00:15:01Z',
    updatedAt: '2026-01-01T00:15:02Z',
    ...overrides,
  };
}

export function makePosition(overrides: Partial<PositionView> = {}): PositionView {
  return {
    id: 'p1',
    botId: makeBot().id,
    symbol: 'BTC/USDT',
    side: 'long',
    status: 'open',
    amount: '0.01',
    entryPrice: '64000',
    leverage: '1',
    stopLoss: '62500',
    takeProfit: '67000',
    markPrice: '65250',
    unrealizedPnl: '12.5',
    exitPrice: null,
    realizedPnl: '0',
    fees: '0.064',
    closeReason: null,
    openedAt: '2026-01-01T00:15:01Z',
    closedAt: null,
    ...overrides,
  };
}

export function makePerformance(overrides: Partial<PerformanceView> = {}): PerformanceView {
  return {
    equityCurve: [],
    startEquity: null,
    endEquity: null,
    returnPct: null,
    maxDrawdownPct: 0,
    maxDrawdown: '0',
    closedPositions: 0,
    winningPositions: 0,
    winRate: null,
    realizedPnl: '0',
    fees: '0',
    openPositions: 0,
    unrealizedPnl: '0',
    ...overrides,
  };
}

export function makeEvent(type: StreamEventType, botId: string | null = makeBot().id): StreamEvent {
  return { type, message: { id: `e-${type}`, tenantId: 't1', botId, type, createdAt: '2026-01-01T00:15:00Z', payload: {} } };
}

export class FakeApi {
  online = true;
  calls: RecordedCall[] = [];
  password = 'correct horse battery';
  email = 'ada@example.com';
  private tokenSerial = 0;
  validAccess = new Set<string>();
  validRefresh = new Set<string>();
  bots: BotView[] = [makeBot()];
  keys: ExchangeKeyView[] = [];
  decisions: DecisionView[] = [];
  orders: OrderView[] = [];
  positions: PositionView[] = [];
  performance: PerformanceView = makePerformance();
  preferences: NotificationPreferences = { push: { 'bot.paused': true, 'trade.opened': true, 'trade.closed': true } };
  devices: { id: string; token: string; platform: string; appVersion?: string }[] = [];
  /** Close requests by Idempotency-Key, as the server keeps them for a day. */
  closes = new Map<string, unknown>();
  lastIdempotencyKey: string | null = null;
  /** Answers the next call to this "METHOD /path" with the given response instead. */
  overrides = new Map<string, () => Response>();

  fetch = async (request: Request): Promise<Response> => {
    if (!this.online) throw new TypeError('Network request failed');
    const url = new URL(request.url);
    const text = request.method === 'GET' || request.method === 'HEAD' ? '' : await request.text();
    const body = text ? JSON.parse(text) : undefined;
    const authorization = request.headers.get('Authorization');
    this.lastIdempotencyKey = request.headers.get('Idempotency-Key');
    this.calls.push({ method: request.method, path: url.pathname, body, authorization, idempotencyKey: this.lastIdempotencyKey });
    const route = `${request.method} ${url.pathname}`;
    const override = this.overrides.get(route);
    if (override) {
      this.overrides.delete(route);
      return override();
    }
    return this.route(request.method, url, body, authorization);
  };

  callsTo(method: string, path: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method && c.path === path);
  }

  issueTokens() {
    this.tokenSerial += 1;
    const tokens = { accessToken: `access-${this.tokenSerial}`, refreshToken: `refresh-${this.tokenSerial}`, tokenType: 'Bearer', expiresIn: 900 };
    this.validAccess.add(tokens.accessToken);
    this.validRefresh.add(tokens.refreshToken);
    return tokens;
  }

  /** Every access token issued so far stops working, as when they expire. */
  expireAccessTokens() {
    this.validAccess.clear();
  }

  private route(method: string, url: URL, body: any, authorization: string | null): Response {
    const path = url.pathname;
    if (method === 'POST' && path === '/v1/auth/login') {
      if (body.email !== this.email || body.password !== this.password) return problem(401, 'Wrong email or password.');
      return json(200, this.issueTokens());
    }
    if (method === 'POST' && path === '/v1/auth/register') {
      if (body.email === this.email) return problem(409, 'An account with this email already exists.');
      this.email = body.email;
      this.password = body.password;
      return json(201, this.issueTokens());
    }
    if (method === 'POST' && path === '/v1/auth/refresh') {
      if (!this.validRefresh.delete(body.refreshToken)) return problem(401, 'The refresh token is not valid.');
      return json(200, this.issueTokens());
    }
    const token = authorization?.replace(/^Bearer /, '') ?? '';
    if (!this.validAccess.has(token)) return problem(401, 'Authentication required.');

    if (method === 'POST' && path === '/v1/auth/logout') {
      this.validAccess.delete(token);
      return new Response(null, { status: 204 });
    }
    if (method === 'GET' && path === '/v1/me') {
      return json(200, { id: 'u1', email: this.email, role: 'owner', createdAt: '2026-01-01T00:00:00Z', lastLoginAt: null, tenant: { id: 't1', name: 'Ada' } });
    }
    if (method === 'GET' && path === '/v1/bot-config') return json(200, this.bots[0]);
    if (method === 'PUT' && path === '/v1/bot-config') {
      const bot = { ...makeBot({ id: this.bots[0]!.id, active: this.bots[0]!.active }), ...body };
      this.bots[0] = bot;
      return json(200, bot);
    }
    if (method === 'GET' && path === '/v1/bots') return json(200, { items: this.bots, nextCursor: null });
    const one = path.match(/^\/v1\/bots\/([^/]+)$/);
    if (method === 'GET' && one) {
      const bot = this.bots.find((b) => b.id === one[1]);
      return bot ? json(200, bot) : problem(404, 'Not found.');
    }
    const closePosition = path.match(/^\/v1\/positions\/([^/]+)\/close$/);
    const closeBot = path.match(/^\/v1\/bots\/([^/]+)\/close$/);
    if (method === 'POST' && (closePosition || closeBot || path === '/v1/positions/close-all')) {
      if (path === '/v1/positions/close-all' && body?.password !== this.password) return problem(403, 'the password is wrong: nothing was closed');
      const key = this.lastIdempotencyKey ?? '';
      const known = this.closes.get(key);
      if (known) return json(200, known);
      const targets = this.positions.filter((p) => p.status === 'open' && (!closePosition || p.id === closePosition[1]) && (!closeBot || p.botId === closeBot[1]));
      if (closePosition && !targets.length) return problem(422, 'the position is already closed');
      const view = {
        id: `close-${this.closes.size + 1}`,
        scope: closePosition ? 'position' : closeBot ? 'bot' : 'tenant',
        status: 'done',
        botId: closeBot?.[1] ?? null,
        positionId: closePosition?.[1] ?? null,
        stopBots: Boolean(body?.stopBot) || !closePosition && !closeBot,
        positions: targets.length,
        results: targets.map((p) => ({
          positionId: p.id, botId: p.botId, symbol: p.symbol, side: p.side, amount: p.amount, status: 'closed',
          clientOrderId: `q-close-${p.id}`, exitPrice: p.markPrice ?? p.entryPrice, realizedPnl: p.unrealizedPnl, detail: '',
        })),
        canceledOrders: 0,
        createdAt: '2026-01-01T00:20:00Z',
        finishedAt: '2026-01-01T00:20:01Z',
      };
      for (const p of targets) Object.assign(p, { status: 'closed', exitPrice: p.markPrice, realizedPnl: p.unrealizedPnl, unrealizedPnl: '0', closeReason: 'manual' });
      if (view.stopBots) for (const b of this.bots) if (!closeBot || b.id === closeBot[1]) b.active = false;
      if (key) this.closes.set(key, view);
      return json(200, view);
    }
    const action = path.match(/^\/v1\/bots\/([^/]+)\/(start|stop)$/);
    if (method === 'POST' && action) {
      const bot = this.bots.find((b) => b.id === action[1]);
      if (!bot) return problem(404, 'Not found.');
      bot.active = action[2] === 'start';
      return json(200, bot);
    }
    const detail = path.match(/^\/v1\/bots\/([^/]+)\/(decisions|orders|positions|performance)$/);
    if (method === 'GET' && detail) {
      const limit = Number(url.searchParams.get('limit') ?? 20);
      const own = <T extends { botId?: string }>(items: T[]) => items.filter((i) => !i.botId || i.botId === detail[1]).slice(0, limit);
      if (detail[2] === 'decisions') return json(200, { items: own(this.decisions), nextCursor: null });
      if (detail[2] === 'orders') return json(200, { items: own(this.orders), nextCursor: null });
      const status = url.searchParams.get('status');
      if (detail[2] === 'positions') return json(200, { items: own(this.positions.filter((p) => !status || p.status === status)), nextCursor: null });
      return json(200, this.performance);
    }
    if (method === 'GET' && path === '/v1/exchange-keys') return json(200, this.keys);
    if (method === 'POST' && path === '/v1/exchange-keys') {
      if (body.exchange !== 'paper' && !body.apiKey) return problem(422, 'apiKey: required for a real exchange', [{ field: 'apiKey', message: 'required for a real exchange' }]);
      const key: ExchangeKeyView = {
        id: `k${this.keys.length + 1}`,
        exchange: body.exchange,
        label: body.label,
        testnet: Boolean(body.testnet),
        apiKeyMask: body.apiKey ? `••••${String(body.apiKey).slice(-4)}` : '',
        canTrade: body.exchange === 'paper' ? null : true,
        canWithdraw: body.exchange === 'paper' ? null : false,
        ipWhitelisted: body.exchange === 'paper' ? null : false,
        warnings: [],
        createdAt: '2026-01-01T00:00:00Z',
      };
      this.keys.push(key);
      return json(201, key);
    }
    const key = path.match(/^\/v1\/exchange-keys\/([^/]+)$/);
    if (method === 'DELETE' && key) {
      this.keys = this.keys.filter((k) => k.id !== key[1]);
      return new Response(null, { status: 204 });
    }
    if (method === 'GET' && path === '/v1/notification-preferences') return json(200, this.preferences);
    if (method === 'PUT' && path === '/v1/notification-preferences') {
      this.preferences = body;
      return json(200, this.preferences);
    }
    if (method === 'POST' && path === '/v1/devices') {
      const device = { id: `dev${this.devices.length + 1}`, ...body };
      this.devices.push(device);
      const at = '2026-01-01T00:00:00Z';
      return json(200, { id: device.id, platform: device.platform, tokenEnding: String(device.token).slice(-8), appVersion: device.appVersion ?? '', lastSeenAt: at, createdAt: at });
    }
    const device = path.match(/^\/v1\/devices\/([^/]+)$/);
    if (method === 'DELETE' && device) {
      this.devices = this.devices.filter((d) => d.id !== device[1]);
      return new Response(null, { status: 204 });
    }
    return problem(404, 'No resource exists at this path.');
  }
}

export class MemoryTokenStore {
  token: string | null = null;
  load = async () => this.token;
  save = async (token: string) => {
    this.token = token;
  };
  clear = async () => {
    this.token = null;
  };
}
