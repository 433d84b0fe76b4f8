"""Bots API: CRUD, start and stop at /v1/bots; the tenant's default bot at /v1/bot-config (the mobile app's path)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.auth import requires
from api.bots.schemas import BotListResponse, BotPatchRequest, BotRequest, BotView
from api.dependencies import Bots, CurrentPrincipal
from api.openapi import AUTHENTICATED, BACKEND, BEARER, BODY, problems
from api.wire import Cursor
from tenants.bot_queries import BotRecord
from tenants.bots import BotChanges, BotSettings
from tenants.models import Bot
from tenants.principal import Principal, Scope

PAGE_SIZE_MAX = 100
_DECIMAL_FIELDS = ("leverage", "risk_per_trade_pct", "daily_loss_limit_pct")

READ = [requires(Scope.BOTS_READ)]
WRITE = [requires(Scope.BOTS_WRITE)]
# An id that is not one of this tenant's bots (or not a UUID at all) answers 404.
BY_ID = (404,)


def _wire_to_domain(values: dict[str, Any]) -> dict[str, Any]:
    # str() first: Decimal(0.1) would carry the float's binary error into the stored value.
    return {k: Decimal(str(v)) if k in _DECIMAL_FIELDS and v is not msgspec.UNSET else v for k, v in values.items()}


def _settings(data: BotRequest) -> BotSettings:
    return BotSettings(**_wire_to_domain(msgspec.structs.asdict(data)))


def _view(bot: Bot | BotRecord) -> BotView:
    return BotView(
        id=bot.id, name=bot.name, exchange_key_id=bot.exchange_key_id, symbols=list(bot.symbols),
        timeframes=list(bot.timeframes), leverage=float(bot.leverage), risk_per_trade_pct=float(bot.risk_per_trade_pct),
        max_open_positions=bot.max_open_positions, daily_loss_limit_pct=float(bot.daily_loss_limit_pct),
        cycle_interval_seconds=bot.cycle_interval_seconds, agent_weights=dict(bot.agent_weights), brain=bot.brain,
        brain_model=bot.brain_model, mode=bot.mode, active=bot.is_active, is_default=bot.is_default,
        paused_reason=bot.paused_reason, silent_since=bot.silent_since, created_at=bot.created_at,
        updated_at=bot.updated_at,
    )


class BotController(Controller):
    path = "/v1/bots"
    tags = ["bots"]
    security = BEARER

    @post("/", status_code=HTTP_201_CREATED, guards=WRITE, summary="Create a bot (stopped)",
          responses=problems(BODY, AUTHENTICATED, BACKEND))
    async def create_bot(self, data: BotRequest, principal: CurrentPrincipal, bots: Bots) -> BotView:
        return _view(await bots.create(principal, _settings(data)))

    @get("/", guards=READ, summary="The tenant's bots, newest first, one page at a time",
         responses=problems(400, AUTHENTICATED, BACKEND))
    async def list_bots(
        self, request: Request[Principal, Any, Any], bots: Bots,
        limit: Annotated[int, Parameter(ge=1, le=PAGE_SIZE_MAX, description="Page size")] = 20,
        cursor: Cursor = None,
    ) -> BotListResponse:
        # request.user, not the `principal` dependency: see `get_bot`.
        page = await bots.list(request.user, limit, cursor)
        return BotListResponse(items=[_view(b) for b in page.items], next_cursor=page.next_cursor)

    @get("/{bot_id:uuid}", guards=READ, summary="One bot", responses=problems(BY_ID, AUTHENTICATED, BACKEND))
    async def get_bot(self, bot_id: uuid.UUID, request: Request[Principal, Any, Any],
                      bots: Bots) -> BotView:
        # request.user rather than the `principal` dependency: with two dependencies Litestar starts a task
        # group to resolve them, a sixth of a read's time (bench/load.py). The guard has checked it.
        return _view(await bots.get(request.user, bot_id))

    @patch("/{bot_id:uuid}", guards=WRITE, summary="Change some of a bot's settings",
           responses=problems(BY_ID, BODY, AUTHENTICATED, BACKEND))
    async def update_bot(self, bot_id: uuid.UUID, data: BotPatchRequest, principal: CurrentPrincipal,
                         bots: Bots) -> BotView:
        changes = BotChanges(**_wire_to_domain(msgspec.structs.asdict(data)))
        return _view(await bots.update(principal, bot_id, changes))

    @delete("/{bot_id:uuid}", status_code=HTTP_204_NO_CONTENT, guards=WRITE, summary="Delete a bot",
            responses=problems(BY_ID, AUTHENTICATED, BACKEND))
    async def delete_bot(self, bot_id: uuid.UUID, principal: CurrentPrincipal, bots: Bots) -> None:
        await bots.delete(principal, bot_id)

    @post("/{bot_id:uuid}/start", status_code=HTTP_200_OK, guards=WRITE,
          summary="Start trading on the bot's schedule (its configuration is checked again first)",
          responses=problems(BY_ID, 422, AUTHENTICATED, BACKEND))
    async def start_bot(self, bot_id: uuid.UUID, principal: CurrentPrincipal, bots: Bots) -> BotView:
        return _view(await bots.start(principal, bot_id))

    @post("/{bot_id:uuid}/stop", status_code=HTTP_200_OK, guards=WRITE, summary="Stop the bot",
          responses=problems(BY_ID, AUTHENTICATED, BACKEND))
    async def stop_bot(self, bot_id: uuid.UUID, principal: CurrentPrincipal, bots: Bots) -> BotView:
        return _view(await bots.stop(principal, bot_id))


class BotConfigController(Controller):
    path = "/v1/bot-config"
    tags = ["bots"]
    security = BEARER

    @get("/", guards=READ, summary="The tenant's default bot, created as a paper bot the first time",
         responses=problems(AUTHENTICATED, BACKEND))
    async def get_bot_config(self, principal: CurrentPrincipal, bots: Bots) -> BotView:
        return _view(await bots.get_default_config(principal))

    @put("/", guards=WRITE, summary="Replace the default bot's configuration (omitted fields take defaults)",
         responses=problems(BODY, AUTHENTICATED, BACKEND))
    async def put_bot_config(self, data: BotRequest, principal: CurrentPrincipal, bots: Bots) -> BotView:
        return _view(await bots.put_default_config(principal, _settings(data)))
