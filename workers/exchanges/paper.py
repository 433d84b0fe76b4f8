"""The paper exchange: a simulated account per bot, its orders and positions in PostgreSQL.

It behaves like a one-way perpetual account on a real exchange, seen through the same `Exchange`
interface: market orders fill at once at the last close, worse by the slippage, and pay a fee on
the notional; an order in the opposite direction reduces (and past zero, flips) the position;
client order ids are unique per account, so a repeated create raises `DuplicateClientOrderId`.
Leverage sets the margin an order needs: notional / leverage plus the fee must fit in the free cash
(cash minus the margin of open positions), else `InsufficientFunds`.

Stop-loss and take-profit are checked against each candle's low and high since the last check, in
time order, whenever positions are read (the cycle reconciles first, so before every decision). A
candle that opens beyond the stop fills at its open (a gap); one that touches both the stop and the
target counts as the stop (the conservative reading). Prices come from `prices`: for each symbol,
the trading-timeframe candles that had closed when the cycle started.

Every method runs in its own transaction in the tenant's row-level-security context, so an order is
as durable as on a real exchange the moment `create_order` returns.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

import asyncpg
import msgspec
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from quorum.database import Database
from tenants.models import PaperAccount, PaperOrder, PaperPosition
from tenants.scope import TenantScope
from workers.exchanges.base import (
    AssetBalance,
    ExchangeOrder,
    KeyCheck,
    MarketRules,
    OrderIntent,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Side,
)
from workers.exchanges.errors import (
    DuplicateClientOrderId,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
)
from workers.market.candles import TIMEFRAME_MS, Candles

NAME = PAPER = "paper"
ZERO = Decimal(0)
MAX_LEVERAGE = 100.0


def parse_balances(setting: str) -> dict[str, Decimal]:
    """`"USDT=10000,BTC=1"` → {"USDT": Decimal("10000"), "BTC": Decimal("1")}."""
    pairs = (entry.split("=", 1) for entry in setting.split(",") if "=" in entry)
    return {code.strip().upper(): Decimal(amount.strip()) for code, amount in pairs}


def settle_currency(symbol: str) -> str:
    """The currency an order on `symbol` is paid and settled in: `BTC/USDT` → USDT, `BTC/USD:BTC` → BTC."""
    pair, _, settle = symbol.partition(":")
    return settle or pair.partition("/")[2]


def _d(value: float) -> Decimal:
    return Decimal(repr(value))


class _PositionRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    symbol: str
    side: str
    amount: Decimal
    entry_price: Decimal
    leverage: Decimal
    stop_loss: Decimal | None
    take_profit: Decimal | None
    checked_until_ms: int


class _Account(msgspec.Struct):
    id: uuid.UUID
    balances: dict[str, str]  # currency → decimal string
    positions: list[_PositionRow]


_account = msgspec.json.Decoder(_Account)
_encode = msgspec.json.Encoder().encode
_READ = """
SELECT json_build_object('id', a.id, 'balances', a.balances, 'positions', coalesce((
    SELECT json_agg(p ORDER BY p.symbol) FROM (
        SELECT id, symbol, side, amount, entry_price, leverage, stop_loss, take_profit, checked_until_ms
        FROM paper_positions WHERE account_id = a.id) p), '[]'))::text
FROM paper_accounts a WHERE a.bot_id = $1
"""
_READ_LOCKED = _READ + " FOR UPDATE OF a"
_CREATE = """
INSERT INTO paper_accounts (id, tenant_id, bot_id, balances, created_at, updated_at)
VALUES ($1, $2, $3, $4::jsonb, now(), now()) ON CONFLICT DO NOTHING
"""
_CHECKED = "UPDATE paper_positions SET checked_until_ms = $2, updated_at = now() WHERE id = $1"
# A stop or target reached: the cash moves, the exit is an order on the account, the position goes.
_CLOSE_AT_TRIGGER = """
WITH account AS (
    UPDATE paper_accounts SET balances = $2::jsonb, updated_at = now() WHERE id = $1
), exited AS (
    INSERT INTO paper_orders (id, tenant_id, account_id, client_order_id, symbol, side, type, status, amount,
        filled, average, fee, reduce_only, reason, created_at, updated_at)
    VALUES ($3, $4, $1, $5, $6, $7, 'market', 'filled', $8, $8, $9, $10, true, $11, now(), now())
)
DELETE FROM paper_positions WHERE id = $12
"""


class PaperExchange:
    name = NAME

    def __init__(
        self,
        database: Database,
        tenant_id: uuid.UUID,
        bot_id: uuid.UUID,
        prices: Mapping[str, Candles],
        *,
        starting_balances: Mapping[str, Decimal],
        fee_pct: float = 0.1,
        slippage_pct: float = 0.05,
    ) -> None:
        self._db = database
        self._tenant_id = tenant_id
        self._bot_id = bot_id
        self._prices = prices
        self._starting = {code: str(amount) for code, amount in starting_balances.items()}
        self._fee = Decimal(repr(fee_pct)) / 100
        self._slippage = Decimal(repr(slippage_pct)) / 100
        self._account_id: uuid.UUID | None = None
        self._balance: dict[str, AssetBalance] | None = None

    def __repr__(self) -> str:
        return f"PaperExchange(bot={self._bot_id})"

    async def check_key(self) -> KeyCheck:
        return KeyCheck(can_withdraw=False, ip_whitelisted=None, can_trade=True, notes=("paper account",))

    async def fetch_balance(self) -> dict[str, AssetBalance]:
        if self._balance is None:  # else as `fetch_positions` left it, nothing traded since
            async with TenantScope.of(self._tenant_id).connection(self._db) as conn:
                account = await self._read(conn, lock=False)
            self._balance = _balance(account.balances, account.positions)
        return self._balance

    async def fetch_positions(self, symbols: Sequence[str]) -> list[Position]:
        """Open positions, after closing those whose stop-loss or take-profit the candles since reached.

        The account is read once, locked, for both: the balance it leaves is what `fetch_balance`
        answers until an order changes it."""
        async with TenantScope.of(self._tenant_id).connection(self._db) as conn:
            account = await self._read(conn, lock=True)
            still_open = [row for row in account.positions if not await self._trigger(conn, account, row)]
        self._balance = _balance(account.balances, still_open)
        wanted = set(symbols)
        return [self._position(row) for row in still_open if row.symbol in wanted]

    async def fetch_open_orders(self, symbol: str) -> list[ExchangeOrder]:
        return []  # market orders only: nothing ever rests on the paper book

    async def create_order(self, intent: OrderIntent) -> ExchangeOrder:
        if intent.type is not OrderType.MARKET:
            raise InvalidOrder("the paper exchange takes market orders only", exchange=NAME)
        price = self._last_price(intent.symbol)
        self._balance = None
        async with TenantScope.of(self._tenant_id).session(self._db) as session:
            account = await self._account(session, lock=True)
            exists = await session.scalar(
                select(func.count())
                .select_from(PaperOrder)
                .where(PaperOrder.account_id == account.id, PaperOrder.client_order_id == intent.client_order_id)
            )
            if exists:
                raise DuplicateClientOrderId(f"client order id {intent.client_order_id} exists", exchange=NAME)
            position = await session.scalar(
                select(PaperPosition).where(
                    PaperPosition.account_id == account.id, PaperPosition.symbol == intent.symbol
                )
            )
            amount = _d(intent.amount)
            if intent.reduce_only:
                closes = position is not None and (position.side == PositionSide.LONG) == (intent.side is Side.SELL)
                if not closes:
                    raise InvalidOrder("reduce-only order but no position to reduce", exchange=NAME)
                amount = min(amount, position.amount)
            fill_price = self._slipped(price, intent.side)
            fee = amount * fill_price * self._fee
            leverage = _d(min(intent.leverage or (float(position.leverage) if position else 1.0), MAX_LEVERAGE))
            await self._apply_fill(session, account, position, intent, amount, fill_price, fee, leverage)
            # The account row is locked: the check above stays true until this commits.
            order_id = uuid7()
            await session.execute(
                insert(PaperOrder).values(
                    id=order_id,
                    tenant_id=self._tenant_id,
                    account_id=account.id,
                    client_order_id=intent.client_order_id,
                    symbol=intent.symbol,
                    side=intent.side.value,
                    type=intent.type.value,
                    status=OrderStatus.FILLED.value,
                    amount=amount,
                    filled=amount,
                    price=None,
                    average=fill_price,
                    fee=fee,
                    reduce_only=intent.reduce_only,
                    stop_loss=_opt(intent.stop_loss),
                    take_profit=_opt(intent.take_profit),
                    reason="order",
                )
            )
        return ExchangeOrder(
            id=str(order_id),
            client_order_id=intent.client_order_id,
            symbol=intent.symbol,
            side=intent.side,
            type=intent.type,
            status=OrderStatus.FILLED,
            amount=float(amount),
            filled=float(amount),
            average=float(fill_price),
            reduce_only=intent.reduce_only,
            stop_loss=intent.stop_loss,
            take_profit=intent.take_profit,
            fee=float(fee),
        )

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> ExchangeOrder | None:
        async with TenantScope.of(self._tenant_id).session(self._db) as session:
            account = await self._account(session, lock=False)
            row = await session.scalar(
                select(PaperOrder).where(
                    PaperOrder.account_id == account.id, PaperOrder.client_order_id == client_order_id
                )
            )
        return _order(row) if row is not None else None

    async def cancel_order(
        self, symbol: str, *, order_id: str | None = None, client_order_id: str | None = None
    ) -> None:
        raise OrderNotFound("no open order: paper orders fill at once", exchange=NAME)

    async def set_leverage(self, symbol: str, leverage: float) -> None:
        if not 1 <= leverage <= MAX_LEVERAGE:
            raise InvalidOrder(f"leverage must be between 1 and {MAX_LEVERAGE:g}", exchange=NAME)

    async def market_rules(self, symbol: str) -> MarketRules:
        self._last_price(symbol)  # an unknown market is an error here as on a real exchange
        return MarketRules(
            symbol=symbol,
            min_amount=None,
            amount_step=None,
            price_tick=None,
            min_notional=None,
            max_leverage=MAX_LEVERAGE,
        )

    async def close(self) -> None:
        return None

    # -- internals --

    def _last_price(self, symbol: str) -> Decimal:
        candles = self._prices.get(symbol)
        if candles is None or len(candles) == 0:
            raise ExchangeUnavailable(f"no price for {symbol}", exchange=NAME)
        return _d(float(candles.close[-1]))

    def _slipped(self, price: Decimal, side: Side) -> Decimal:
        return price * (1 + self._slippage) if side is Side.BUY else price * (1 - self._slippage)

    async def _account(self, session: AsyncSession, *, lock: bool) -> PaperAccount:
        query = select(PaperAccount).where(PaperAccount.bot_id == self._bot_id)
        if lock:
            query = query.with_for_update()
        account = await session.scalar(query)
        if account is None:
            await session.execute(
                pg_insert(PaperAccount)
                .values(id=uuid7(), tenant_id=self._tenant_id, bot_id=self._bot_id, balances=self._starting)
                .on_conflict_do_nothing()
            )
            account = await session.scalar(query)
            assert account is not None
        self._account_id = account.id
        return account

    async def _read(self, conn: asyncpg.Connection, *, lock: bool) -> _Account:
        """The bot's account and its positions in one statement; made with the starting balances on first use."""
        found = await conn.fetchval(_READ_LOCKED if lock else _READ, self._bot_id)
        if found is None:
            await conn.execute(_CREATE, uuid7(), self._tenant_id, self._bot_id, _encode(self._starting).decode())
            found = await conn.fetchval(_READ_LOCKED if lock else _READ, self._bot_id)
        account = _account.decode(found)
        self._account_id = account.id
        return account

    async def _apply_fill(
        self,
        session: AsyncSession,
        account: PaperAccount,
        position: PaperPosition | None,
        intent: OrderIntent,
        amount: Decimal,
        price: Decimal,
        fee: Decimal,
        leverage: Decimal,
    ) -> None:
        """Net the fill into the position and move the cash: realised PnL in, fee out."""
        code = settle_currency(intent.symbol)
        balances = {c: Decimal(v) for c, v in account.balances.items()}
        cash = balances.get(code, ZERO)
        side = PositionSide.LONG if intent.side is Side.BUY else PositionSide.SHORT
        realised = ZERO
        opening = amount
        if position is not None and position.side != side:  # reduces, maybe flips
            closing = min(amount, position.amount)
            realised = _pnl(position.side, position.entry_price, price, closing)
            opening = amount - closing
        if opening > 0:
            held = (await session.scalars(select(PaperPosition).where(PaperPosition.account_id == account.id))).all()
            margin = _margin(held).get(code, ZERO)
            if position is not None and position.side != side:
                margin -= position.amount * position.entry_price / position.leverage
            needed = opening * price / leverage + fee
            if needed > cash + realised - margin:
                raise InsufficientFunds(
                    f"needs {needed:.8f} {code} of margin and fee, {cash + realised - margin:.8f} free", exchange=NAME
                )
        balances[code] = cash + realised - fee
        await session.execute(
            update(PaperAccount)
            .where(PaperAccount.id == account.id)
            .values(balances={c: str(v) for c, v in balances.items()}, updated_at=func.now())
        )
        account.balances = {c: str(v) for c, v in balances.items()}
        checked = self._candle_end(intent.symbol)
        sl, tp = _opt(intent.stop_loss), _opt(intent.take_profit)
        if position is None:
            session.add(
                PaperPosition(
                    id=uuid7(),
                    tenant_id=self._tenant_id,
                    account_id=account.id,
                    symbol=intent.symbol,
                    side=side.value,
                    amount=amount,
                    entry_price=price,
                    leverage=leverage,
                    stop_loss=sl,
                    take_profit=tp,
                    checked_until_ms=checked,
                )
            )
        elif position.side == side:  # adds: average the entry
            total = position.amount + amount
            position.entry_price = (position.entry_price * position.amount + price * amount) / total
            position.amount = total
            position.leverage = leverage
            position.stop_loss = sl if sl is not None else position.stop_loss
            position.take_profit = tp if tp is not None else position.take_profit
        elif opening > 0:  # flipped
            position.side, position.amount, position.entry_price = side.value, opening, price
            position.leverage, position.stop_loss, position.take_profit = leverage, sl, tp
            position.checked_until_ms = checked
        elif amount == position.amount:
            await session.delete(position)
        else:
            position.amount -= amount
        await session.flush()

    def _candle_end(self, symbol: str) -> int:
        candles = self._prices.get(symbol)
        if candles is None or len(candles) == 0:
            return 0
        return int(candles.timestamp[-1]) + TIMEFRAME_MS[candles.timeframe]

    async def _trigger(self, conn: asyncpg.Connection, account: _Account, row: _PositionRow) -> bool:
        """Close `row` at its stop or target if a candle since the last check reached it; True if closed."""
        candles = self._prices.get(row.symbol)
        if candles is None or len(candles) == 0 or (row.stop_loss is None and row.take_profit is None):
            return False
        exit_ = exit_trigger(candles, row.checked_until_ms, row.side, row.stop_loss, row.take_profit)
        if exit_ is None:
            end = int(candles.timestamp[-1]) + TIMEFRAME_MS[candles.timeframe]
            if end > row.checked_until_ms:
                await conn.execute(_CHECKED, row.id, end)
            return False
        side = Side.SELL if row.side == PositionSide.LONG else Side.BUY
        price = self._slipped(exit_.fill, side)
        fee = row.amount * price * self._fee
        code = settle_currency(row.symbol)
        balances = {c: Decimal(v) for c, v in account.balances.items()}
        balances[code] = balances.get(code, ZERO) + _pnl(row.side, row.entry_price, price, row.amount) - fee
        account.balances = {c: str(v) for c, v in balances.items()}
        await conn.execute(
            _CLOSE_AT_TRIGGER,
            account.id,
            _encode(account.balances).decode(),
            uuid7(),
            self._tenant_id,
            f"{exit_.reason[:2]}-{row.id.hex[:30]}",
            row.symbol,
            side.value,
            row.amount,
            price,
            fee,
            exit_.reason,
            row.id,
        )
        return True

    def _position(self, row: _PositionRow) -> Position:
        mark = self._last_price(row.symbol) if row.symbol in self._prices else None
        return Position(
            symbol=row.symbol,
            side=PositionSide(row.side),
            amount=float(row.amount),
            entry_price=float(row.entry_price),
            mark_price=float(mark) if mark is not None else None,
            unrealized_pnl=float(_pnl(row.side, row.entry_price, mark, row.amount)) if mark is not None else None,
            leverage=float(row.leverage),
            stop_loss=_f(row.stop_loss),
            take_profit=_f(row.take_profit),
        )


class ExitTrigger(msgspec.Struct, frozen=True):
    """A stop or target a candle reached: which, its level, and the price a market exit gets (the
    candle's open when it gapped through the level)."""

    reason: str  # stop_loss | take_profit
    level: Decimal
    fill: Decimal


def exit_trigger(
    candles: Candles, since_ms: int, side: str, stop: Decimal | None, target: Decimal | None
) -> ExitTrigger | None:
    """The first candle opening at or after `since_ms` whose low or high reaches the position's stop or
    target, in time order; a candle touching both counts as the stop (the conservative reading)."""
    long = side == PositionSide.LONG
    for i in range(len(candles)):
        if int(candles.timestamp[i]) < since_ms:
            continue
        low, high, open_ = _d(float(candles.low[i])), _d(float(candles.high[i])), _d(float(candles.open[i]))
        if stop is not None and (low <= stop if long else high >= stop):
            return ExitTrigger("stop_loss", stop, open_ if (open_ < stop if long else open_ > stop) else stop)
        if target is not None and (high >= target if long else low <= target):
            return ExitTrigger("take_profit", target, open_ if (open_ > target if long else open_ < target) else target)
    return None


def _margin(positions: Iterable[PaperPosition | _PositionRow]) -> dict[str, Decimal]:
    """The margin open positions hold, by settlement currency."""
    margin: dict[str, Decimal] = {}
    for row in positions:
        code = settle_currency(row.symbol)
        margin[code] = margin.get(code, ZERO) + row.amount * row.entry_price / row.leverage
    return margin


def _balance(balances: Mapping[str, str], positions: Iterable[_PositionRow]) -> dict[str, AssetBalance]:
    margin = _margin(positions)
    return {
        code: AssetBalance(currency=code, total=float(total), free=float(total - margin.get(code, ZERO)))
        for code, total in ((c, Decimal(v)) for c, v in balances.items())
        if total != 0
    }


def _pnl(side: str, entry: Decimal, exit_: Decimal, amount: Decimal) -> Decimal:
    return (exit_ - entry) * amount if side == PositionSide.LONG else (entry - exit_) * amount


def _opt(value: float | None) -> Decimal | None:
    return _d(value) if value is not None else None


def _f(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def _order(row: PaperOrder) -> ExchangeOrder:
    return ExchangeOrder(
        id=str(row.id),
        client_order_id=row.client_order_id,
        symbol=row.symbol,
        side=Side(row.side),
        type=OrderType(row.type),
        status=OrderStatus(row.status),
        amount=float(row.amount),
        filled=float(row.filled),
        price=_f(row.price),
        average=_f(row.average),
        reduce_only=row.reduce_only,
        stop_loss=_f(row.stop_loss),
        take_profit=_f(row.take_profit),
        fee=float(row.fee),
    )
