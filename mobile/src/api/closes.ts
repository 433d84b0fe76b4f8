/**
 * Close now: a position, a bot's positions, or everything (panic). Each ask carries one Idempotency-Key for
 * all its attempts, so a retry after a lost answer returns the first answer and sends no second order; an
 * ask a worker is still on (202) is followed until it is done.
 */
import type { Api } from './client';
import { call } from './client';
import { OfflineError } from './problem';
import type { components } from './schema';

export type CloseView = components['schemas']['CloseView'];
export type CloseResultView = components['schemas']['CloseResultView'];

const FOLLOW_FOR_MS = 30_000;
const FOLLOW_EVERY_MS = 1_000;

/** A fresh key per ask: random enough that two asks never share one (it names the ask, it guards nothing). */
export function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16);
  const crypto = globalThis.crypto;
  if (crypto?.getRandomValues) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export type CloseAsk =
  | { kind: 'position'; positionId: string }
  | { kind: 'bot'; botId: string; stopBot: boolean }
  | { kind: 'all'; password: string };

function send(api: Api, ask: CloseAsk, key: string) {
  const header = { 'Idempotency-Key': key };
  switch (ask.kind) {
    case 'position':
      return api.POST('/v1/positions/{position_id}/close', { params: { path: { position_id: ask.positionId }, header } });
    case 'bot':
      return api.POST('/v1/bots/{bot_id}/close', { params: { path: { bot_id: ask.botId }, header }, body: { stopBot: ask.stopBot } });
    case 'all':
      return api.POST('/v1/positions/close-all', { params: { header }, body: { password: ask.password } });
  }
}

/** Ask once (retried once with the same key if no answer came back), then follow it until it is done. */
export async function closeNow(api: Api, ask: CloseAsk, wait = (ms: number) => new Promise((r) => setTimeout(r, ms))): Promise<CloseView> {
  const key = newIdempotencyKey();
  let view: CloseView;
  try {
    view = await call(send(api, ask, key));
  } catch (error) {
    if (!(error instanceof OfflineError)) throw error;
    view = await call(send(api, ask, key)); // the answer was lost: the same key finds the same request
  }
  const deadline = Date.now() + FOLLOW_FOR_MS;
  while (view.status === 'pending' && Date.now() < deadline) {
    await wait(FOLLOW_EVERY_MS);
    view = await call(api.GET('/v1/closes/{close_id}', { params: { path: { close_id: view.id } } }));
  }
  return view;
}

/** One line a person reads: what closed, and what did not and why. */
export function describeClose(view: CloseView): string {
  if (view.status === 'pending') return 'Still closing: the exchange has not answered yet. Check the bot shortly.';
  if (!view.results.length) return 'Nothing was open.';
  return view.results.map(describeResult).join('\n');
}

function describeResult(r: CloseResultView): string {
  const what = `${r.side === 'long' ? 'Long' : 'Short'} ${r.symbol}`;
  switch (r.status) {
    case 'closed':
      return `${what} closed at ${r.exitPrice} · PnL ${Number(r.realizedPnl) >= 0 ? '+' : ''}${r.realizedPnl}`;
    case 'closed_by_exchange':
      return `${what} had already closed (${r.detail})`;
    case 'unknown':
      return `${what}: sent, no answer yet; the bot checks it on its next cycle`;
    default:
      return `${what} not closed: ${r.detail}`;
  }
}
