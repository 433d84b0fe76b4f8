"""Close now: a position, a bot's positions, or everything (panic), at market; and a request followed up.

Each close answers 200 with every position's result once a worker is done (within a few seconds), else 202
with the request as it stands and its `Location`. The `Idempotency-Key` header makes a retry safe: the same
key within 24 hours returns the same request and sends nothing more; the key with a different ask is a 422.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from api.auth import requires
from api.closes.schemas import CloseAllRequest, CloseBotRequest, CloseResultView, CloseView
from api.dependencies import Closes, CurrentPrincipal
from api.openapi import AUTHENTICATED, BACKEND, BEARER, BODY, problems
from tenants.errors import TooManyRequests
from tenants.models import CloseRequest, CloseStatus
from tenants.principal import Principal, Scope

CLOSE = [requires(Scope.POSITIONS_CLOSE)]
READ = [requires(Scope.ACTIVITY_READ)]
PANIC_ATTEMPTS, PANIC_WINDOW_SECONDS = 10, 900  # wrong passwords per user before closing everything waits

IdempotencyKey = Annotated[str | None, Parameter(
    header="Idempotency-Key", required=False,
    description="Any unique string (a UUID): the same key within 24 hours returns the first answer and sends "
                "nothing more; reusing it for a different ask is a 422",
)]
ANSWERS = {
    HTTP_202_ACCEPTED: ResponseSpec(CloseView, description="A worker is still on it: follow `Location`",
                                    generate_examples=False),
}


def view(request: CloseRequest) -> CloseView:
    return CloseView(
        id=request.id, scope=request.scope, status=request.status, bot_id=request.bot_id,  # type: ignore[arg-type]
        position_id=request.position_id, stop_bots=request.stop_bots, positions=len(request.targets),
        results=msgspec.convert(request.results, list[CloseResultView]), canceled_orders=request.canceled_orders,
        created_at=request.created_at, finished_at=request.finished_at,
    )


def answer(request: CloseRequest) -> Response[CloseView]:
    if request.status == CloseStatus.DONE:
        return Response(view(request), status_code=HTTP_200_OK)
    return Response(view(request), status_code=HTTP_202_ACCEPTED, headers={"Location": f"/v1/closes/{request.id}"})


class CloseController(Controller):
    path = "/v1"
    tags = ["close now"]
    security = BEARER

    @post("/positions/{position_id:uuid}/close", status_code=HTTP_200_OK, guards=CLOSE,
          summary="Close one position now, at market (reduce-only)",
          responses={**ANSWERS, **problems(400, 404, 422, AUTHENTICATED, BACKEND)})
    async def close_position(self, position_id: uuid.UUID, principal: CurrentPrincipal, closes: Closes,
                             idempotency_key: IdempotencyKey = None) -> Response[CloseView]:
        return answer(await closes.close_position(principal, position_id, idempotency_key))

    @post("/bots/{bot_id:uuid}/close", status_code=HTTP_200_OK, guards=CLOSE,
          summary="Close every position of a bot now and cancel its resting orders; optionally stop it",
          responses={**ANSWERS, **problems(400, 404, BODY, AUTHENTICATED, BACKEND)})
    async def close_bot(self, bot_id: uuid.UUID, principal: CurrentPrincipal, closes: Closes,
                        data: CloseBotRequest | None = None,
                        idempotency_key: IdempotencyKey = None) -> Response[CloseView]:
        stop = data.stop_bot if data is not None else False  # no body: close them all and keep it running
        return answer(await closes.close_bot(principal, bot_id, stop, idempotency_key))

    @post("/positions/close-all", status_code=HTTP_200_OK, guards=CLOSE,
          summary="Panic: close every position of every bot now and stop every bot (needs the password)",
          responses={**ANSWERS, **problems(400, BODY, 403, 429, AUTHENTICATED, BACKEND)})
    async def close_all(self, data: CloseAllRequest, request: Request[Principal, Any, Any],
                        principal: CurrentPrincipal, closes: Closes,
                        idempotency_key: IdempotencyKey = None) -> Response[CloseView]:
        wait = await request.app.state.rate_limiter.hit(PANIC_WINDOW_SECONDS, {f"panic:{principal.user_id}":
                                                                               PANIC_ATTEMPTS})
        if wait:
            raise TooManyRequests("too many attempts to close everything; wait and try again", wait)
        return answer(await closes.close_all(principal, data.password, idempotency_key))

    @get("/closes/{close_id:uuid}", guards=READ, summary="A close request: pending, or each position's result",
         responses=problems(404, AUTHENTICATED, BACKEND))
    async def get_close(self, close_id: uuid.UUID, principal: CurrentPrincipal, closes: Closes) -> CloseView:
        return view(await closes.get(principal, close_id))
