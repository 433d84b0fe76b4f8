"""Wire types of close now (camelCase; money as exact decimal strings, like the activity API)."""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Literal

import msgspec

from api.activity.schemas import DecimalText
from api.wire import Request, Response, text


class CloseBotRequest(Request, kw_only=True):
    stop_bot: Annotated[bool, msgspec.Meta(
        description="Also stop the bot, so it opens nothing new (a running cycle finishes first)")] = False


class CloseAllRequest(Request, kw_only=True):
    password: text(1, 256, description="The signed-in user's password: closing everything needs it fresh")


class CloseResultView(Response, kw_only=True):
    position_id: uuid.UUID
    bot_id: uuid.UUID
    symbol: str
    side: Annotated[str, msgspec.Meta(description="long or short")]
    amount: DecimalText
    status: Annotated[
        Literal["closed", "closed_by_exchange", "rejected", "unknown", "failed"],
        msgspec.Meta(description=(
            "closed: our order closed it · closed_by_exchange: it was gone already (a stop or target) · "
            "rejected: the exchange refused the order · unknown: sent, no answer yet (the bot's next cycle "
            "looks it up) · failed: not sent (the detail says why; asking again is safe)"
        )),
    ]
    client_order_id: Annotated[str | None, msgspec.Meta(description="The order's id on the exchange's side")]
    exit_price: DecimalText | None
    realized_pnl: Annotated[str, msgspec.Meta(pattern=r"^-?[0-9]+(\.[0-9]+)?$", description="After fees")] | None
    detail: str


class CloseView(Response, kw_only=True):
    id: uuid.UUID
    scope: Annotated[Literal["position", "bot", "tenant"], msgspec.Meta(
        description="One position, a bot's positions, or every position of the tenant")]
    status: Annotated[Literal["pending", "done"], msgspec.Meta(
        description="pending: a worker is on it (GET /v1/closes/{id} follows it) · done: every position has "
                    "its result")]
    bot_id: uuid.UUID | None
    position_id: uuid.UUID | None
    stop_bots: bool
    positions: Annotated[int, msgspec.Meta(description="How many positions it closes")]
    results: list[CloseResultView]
    canceled_orders: Annotated[int, msgspec.Meta(description="Resting orders of the bots it cancelled")]
    created_at: datetime.datetime
    finished_at: datetime.datetime | None
