"""The hot reads of bots (GET /v1/bots and /v1/bots/{id}, asked for on every screen of the app), on the driver.

Through the ORM, per-statement work was most of these requests' time (bench/load.py), so `BotService.list` and
`BotService.get` run these statements on a read-only `TenantScope.connection`: the same tenant scope, liveness
check and row-level security as every other read. A `BotRecord` carries the model's attribute names, so one
view function in the API serves it and the ORM `Bot` that writes return.
"""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any

import msgspec

# The columns of a `BotRecord`, in its field order.
GET = ("SELECT id, name, exchange_key_id, symbols, timeframes, leverage, risk_per_trade_pct, max_open_positions, "
       "daily_loss_limit_pct, cycle_interval_seconds, agent_weights, brain, brain_model, mode, is_active, is_default, "
       "paused_reason, silent_since, created_at, updated_at FROM bots WHERE id = $1 AND tenant_id = $2")
LIST = ("SELECT id, name, exchange_key_id, symbols, timeframes, leverage, risk_per_trade_pct, max_open_positions, "
        "daily_loss_limit_pct, cycle_interval_seconds, agent_weights, brain, brain_model, mode, is_active, "
        "is_default, paused_reason, silent_since, created_at, updated_at FROM bots "
        "WHERE tenant_id = $1 AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $2")


class BotRecord(msgspec.Struct, frozen=True, array_like=True):
    """One bot as read, in the statements' column order (JSONB arrives decoded, NUMERIC as Decimal)."""

    id: uuid.UUID
    name: str
    exchange_key_id: uuid.UUID | None
    symbols: list[str]
    timeframes: list[str]
    leverage: Decimal
    risk_per_trade_pct: Decimal
    max_open_positions: int
    daily_loss_limit_pct: Decimal
    cycle_interval_seconds: int
    agent_weights: dict[str, float]
    brain: str
    brain_model: str | None
    mode: str
    is_active: bool
    is_default: bool
    paused_reason: str | None
    silent_since: datetime.datetime | None
    created_at: datetime.datetime
    updated_at: datetime.datetime


def record(row: Any) -> BotRecord:
    return BotRecord(*row)
