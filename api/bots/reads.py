"""GET /v1/bots and GET /v1/bots/{id} answered from one query on the driver (`TenantDatabase.reading`).

The app asks for these on every screen, so they skip the ORM: through it, per-statement work was most of
the request's time (bench/load.py). The same tenant scope, liveness check and row-level security as
`BotService`, whose list and get these mirror (newest first, keyset on the UUIDv7 id); writes stay there.
"""

from __future__ import annotations

import uuid
from typing import Any

from api.bots.schemas import BotListResponse, BotView
from tenants.context import TenantDatabase
from tenants.errors import NotFound
from tenants.principal import Principal

# The columns BotView shows, in the order `_view` reads them.
_GET = ("SELECT id, name, exchange_key_id, symbols, timeframes, leverage, risk_per_trade_pct, max_open_positions, "
        "daily_loss_limit_pct, cycle_interval_seconds, agent_weights, brain, brain_model, mode, is_active, is_default, "
        "paused_reason, created_at, updated_at FROM bots WHERE id = $1 AND tenant_id = $2")
_LIST = ("SELECT id, name, exchange_key_id, symbols, timeframes, leverage, risk_per_trade_pct, max_open_positions, "
         "daily_loss_limit_pct, cycle_interval_seconds, agent_weights, brain, brain_model, mode, is_active, "
         "is_default, paused_reason, created_at, updated_at FROM bots "
         "WHERE tenant_id = $1 AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $2")


def _view(row: Any) -> BotView:
    # JSONB arrives decoded (the pool's connections carry SQLAlchemy's JSON codecs); NUMERIC as Decimal.
    return BotView(
        id=row[0], name=row[1], exchange_key_id=row[2], symbols=row[3], timeframes=row[4],
        leverage=float(row[5]), risk_per_trade_pct=float(row[6]), max_open_positions=row[7],
        daily_loss_limit_pct=float(row[8]), cycle_interval_seconds=row[9], agent_weights=row[10],
        brain=row[11], brain_model=row[12], mode=row[13], active=row[14], is_default=row[15],
        paused_reason=row[16], created_at=row[17], updated_at=row[18],
    )


class BotReads:
    def __init__(self, tenants: TenantDatabase) -> None:
        self.tenants = tenants

    async def get(self, principal: Principal, bot_id: uuid.UUID) -> BotView:
        async with self.tenants.reading(principal) as connection:
            row = await connection.fetchrow(_GET, bot_id, principal.tenant_id)
        if row is None:
            raise NotFound("no bot with this id")
        return _view(row)

    async def list(self, principal: Principal, limit: int, cursor: uuid.UUID | None) -> BotListResponse:
        async with self.tenants.reading(principal) as connection:
            rows = await connection.fetch(_LIST, principal.tenant_id, limit + 1, cursor)
        items = [_view(r) for r in rows[:limit]]
        return BotListResponse(items=items, next_cursor=items[-1].id if len(rows) > limit else None)
