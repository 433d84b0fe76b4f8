"""The paper exchange: a simulated account per bot, its orders and positions in PostgreSQL.

It behaves like a one-way perpetual account on a real exchange, seen through the same `Exchange`
interface. What a fill costs and does is `workers.market.fills` (the backtest's model too); this module
keeps its results: market orders fill at once against the last close; client order ids are unique per
account, so a repeated create raises `DuplicateClientOrderId`. The margin of the position after the
order plus the fee must fit in the cash the other positions leave free, else `InsufficientFunds`.

Stop-loss and take-profit are checked against each candle since the last check, in time order,
whenever positions are read (the cycle reconciles first, so before every decision). The exit is a
market order on the account like any other, with its slippage and fee, under the client order id
`exit_client_order_id(<the order that opened the position>)`, so the cycle can look it up. Prices come
from `prices`: for each symbol, the trading-timeframe candles that had closed when the cycle started.

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
    exit_client_order_id,
)
from workers.exchanges.errors import (
    DuplicateClientOrderId,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
)
from workers.market.candles import TIMEFRAME_MS, Candles
from workers.market.fills import (
    AMOUNT_UNIT,
    Fill,
    FillModel,
    Holding,
    closing_side,
    decimal,
    first_trigger,
    net,
    settle_currency,
)
from workers.market.fills import margin as margin_of

NAME = PAPER = "paper"
ZERO = Decimal(0)
MAX_LEVERAGE = 100.0


def parse_balances(setting: str) -> dict[str, Decimal]:
    """`"USDT=10000,BTC=1"` → {"USDT": Decimal("10000"), "BTC": Decimal("1")}."""
    pairs = (entry.split("=", 1) for entry in setting.split(",") if "=" in entry)
    return {code.strip().upper(): Decimal(amount.strip()) for code, amount in pairs}


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

    def holding(self) -> Holding:
        return Holding(symbol=self.symbol, side=PositionSide(self.side), amount=self.amount,
                       entry_price=self.entry_price, leverage=self.leverage, stop_loss=self.stop_loss,
                       take_profit=self.take_profit)


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
# The order that opened (or last added to) a position: the newest one on its side that was not reduce-only.
_OPENED_BY = """
SELECT client_order_id FROM paper_orders
WHERE account_id = $1 AND symbol = $2 AND side = $3 AND NOT reduce_only AND reason = 'order'
ORDER BY id DESC LIMIT 1
"""
# A stop or target reached: the cash moves, the exit is an order on the account, the position goes.
_CLOSE_AT_TRIGGER = """
WITH account AS (
    UPDATE paper_accounts SET balances = $2::jsonb, updated_at = now() WHERE id = $1
), exited AS (
    INSERT INTO paper_orders (id, tenant_id, account_id, client_order_id, symbol, side, type, status, amount,
        filled, average, fee, reduce_only, stop_loss, take_profit, reason, created_at, updated_at)
    VALUES ($3, $4, $1, $5, $6, $7, 'market', 'filled', $8, $8, $9, $10, true, $12, $13, $11, now(), now())
)
DELETE FROM paper_positions WHERE id = $14
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
        self._model = FillModel.from_pct(fee_pct, slippage_pct)
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
            amount = decimal(intent.amount)
            if intent.reduce_only:
                closes = position is not None and (position.side == PositionSide.LONG) == (intent.side is Side.SELL)
                if not closes:
                    raise InvalidOrder("reduce-only order but no position to reduce", exchange=NAME)
                amount = min(amount, position.amount)
            fill = self._model.market(intent.side, amount, price)
            if fill.amount <= 0:
                raise InvalidOrder(f"amount {intent.amount!r} is below the step {AMOUNT_UNIT}", exchange=NAME)
            leverage = decimal(min(intent.leverage or (float(position.leverage) if position else 1.0), MAX_LEVERAGE))
            await self._apply_fill(session, account, position, intent, fill, leverage)
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
                    amount=fill.amount,
                    filled=fill.amount,
                    price=None,
                    average=fill.price,
                    fee=fill.fee,
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
            amount=float(fill.amount),
            filled=float(fill.amount),
            average=float(fill.price),
            reduce_only=intent.reduce_only,
            stop_loss=intent.stop_loss,
            take_profit=intent.take_profit,
            fee=float(fill.fee),
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
            amount_step=float(AMOUNT_UNIT),
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
        return decimal(candles.close[-1])

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
        fill: Fill,
        leverage: Decimal,
    ) -> None:
        """Net the fill into the position and move the cash: realised PnL in, fee out."""
        code = settle_currency(intent.symbol)
        balances = {c: Decimal(v) for c, v in account.balances.items()}
        cash = balances.get(code, ZERO)
        sl, tp = _opt(intent.stop_loss), _opt(intent.take_profit)
        before = _holding(position) if position is not None else None
        netted = net(before, fill, symbol=intent.symbol, leverage=leverage, stop_loss=sl, take_profit=tp)
        after = netted.holding
        if netted.required > 0:
            held = (await session.scalars(select(PaperPosition).where(PaperPosition.account_id == account.id))).all()
            others = _margin(p for p in held if p.symbol != intent.symbol).get(code, ZERO)
            needed, free = netted.required, cash + netted.realised - others
            if needed > free:
                raise InsufficientFunds(f"needs {needed:.8f} {code} of margin and fee, {free:.8f} free", exchange=NAME)
        balances[code] = cash + netted.cash
        await session.execute(
            update(PaperAccount)
            .where(PaperAccount.id == account.id)
            .values(balances={c: str(v) for c, v in balances.items()}, updated_at=func.now())
        )
        account.balances = {c: str(v) for c, v in balances.items()}
        if after is None:
            if position is not None:
                await session.delete(position)
        elif position is None:
            session.add(
                PaperPosition(
                    id=uuid7(),
                    tenant_id=self._tenant_id,
                    account_id=account.id,
                    symbol=intent.symbol,
                    side=after.side.value,
                    amount=after.amount,
                    entry_price=after.entry_price,
                    leverage=after.leverage,
                    stop_loss=after.stop_loss,
                    take_profit=after.take_profit,
                    checked_until_ms=self._candle_end(intent.symbol),
                )
            )
        else:
            if after.side != position.side:  # flipped: the new side's stop and target start at this candle
                position.checked_until_ms = self._candle_end(intent.symbol)
            position.side, position.amount, position.entry_price = after.side.value, after.amount, after.entry_price
            position.leverage, position.stop_loss = after.leverage, after.stop_loss
            position.take_profit = after.take_profit
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
        holding = row.holding()
        hit = first_trigger(candles, row.checked_until_ms, holding)
        if hit is None:
            end = int(candles.timestamp[-1]) + TIMEFRAME_MS[candles.timeframe]
            if end > row.checked_until_ms:
                await conn.execute(_CHECKED, row.id, end)
            return False
        fill = self._model.market(closing_side(row.side), row.amount, hit.price)
        netted = net(holding, fill, symbol=row.symbol)
        code = settle_currency(row.symbol)
        balances = {c: Decimal(v) for c, v in account.balances.items()}
        balances[code] = balances.get(code, ZERO) + netted.cash
        account.balances = {c: str(v) for c, v in balances.items()}
        opened_by = await conn.fetchval(_OPENED_BY, account.id, row.symbol, "buy" if row.side == "long" else "sell")
        coid = exit_client_order_id(opened_by) if opened_by else f"{hit.reason[:2]}-{row.id.hex[:30]}"
        await conn.execute(
            _CLOSE_AT_TRIGGER,
            account.id,
            _encode(account.balances).decode(),
            uuid7(),
            self._tenant_id,
            coid,
            row.symbol,
            fill.side.value,
            fill.amount,
            fill.price,
            fill.fee,
            hit.reason,
            hit.level if hit.reason == "stop_loss" else None,
            hit.level if hit.reason == "take_profit" else None,
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
            unrealized_pnl=float(row.holding().pnl(mark)) if mark is not None else None,
            leverage=float(row.leverage),
            stop_loss=_f(row.stop_loss),
            take_profit=_f(row.take_profit),
        )


def _margin(positions: Iterable[PaperPosition | _PositionRow]) -> dict[str, Decimal]:
    """The margin open positions hold, by settlement currency."""
    margin: dict[str, Decimal] = {}
    for row in positions:
        code = settle_currency(row.symbol)
        margin[code] = margin.get(code, ZERO) + margin_of(row.amount, row.entry_price, row.leverage)
    return margin


def _holding(row: PaperPosition) -> Holding:
    return Holding(symbol=row.symbol, side=PositionSide(row.side), amount=row.amount, entry_price=row.entry_price,
                   leverage=row.leverage, stop_loss=row.stop_loss, take_profit=row.take_profit)


def _balance(balances: Mapping[str, str], positions: Iterable[_PositionRow]) -> dict[str, AssetBalance]:
    margin = _margin(positions)
    return {
        code: AssetBalance(currency=code, total=float(total), free=float(total - margin.get(code, ZERO)))
        for code, total in ((c, Decimal(v)) for c, v in balances.items())
        if total != 0
    }


def _opt(value: float | None) -> Decimal | None:
    return decimal(value) if value is not None else None


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
