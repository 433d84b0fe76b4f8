"""Webhook endpoints for integrators at /v1/webhooks: CRUD, deliveries, a test event, secret rotation.

README, "Verifying a webhook", shows how a receiver checks the signature.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from api.auth import requires
from api.dependencies import CurrentPrincipal, Webhooks
from api.openapi import AUTHENTICATED, BACKEND, BEARER, BODY, problems
from api.webhooks.schemas import (
    CreatedWebhook,
    RotateSecretRequest,
    WebhookDeliveryPage,
    WebhookDeliveryView,
    WebhookPatchRequest,
    WebhookRequest,
    WebhookView,
)
from api.wire import Cursor
from tenants.events import EventType
from tenants.notify_models import WebhookDelivery, WebhookDeliveryStatus, WebhookEndpoint
from tenants.principal import Scope
from tenants.webhooks import EndpointChanges, EndpointSettings, previous_secret_live, utcnow

READ = [requires(Scope.WEBHOOKS_READ)]
WRITE = [requires(Scope.WEBHOOKS_WRITE)]
PAGE_SIZE_MAX = 100


def _fields(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"id": endpoint.id, "url": endpoint.url, "description": endpoint.description,
            "event_types": list(endpoint.event_types), "active": endpoint.is_active,
            "disabled_reason": endpoint.disabled_reason, "consecutive_failures": endpoint.consecutive_failures,
            "last_success_at": endpoint.last_success_at, "last_failure_at": endpoint.last_failure_at,
            "previous_secret_expires_at": (endpoint.previous_secret_expires_at
                                           if previous_secret_live(endpoint, utcnow()) else None),
            "created_at": endpoint.created_at, "updated_at": endpoint.updated_at}


def _delivery(d: WebhookDelivery) -> WebhookDeliveryView:
    return WebhookDeliveryView(
        id=d.id, webhook_id=d.endpoint_id, event_id=d.event_id, event_type=d.event_type,
        status=WebhookDeliveryStatus(d.status), attempts=d.attempts, response_status=d.response_status,
        error=d.error, duration_ms=d.duration_ms, next_attempt_at=d.next_attempt_at, delivered_at=d.delivered_at,
        created_at=d.created_at, updated_at=d.updated_at,
    )


class WebhookController(Controller):
    path = "/v1/webhooks"
    tags = ["webhooks"]
    security = BEARER

    @post("/", status_code=HTTP_201_CREATED, guards=WRITE,
          summary="Add an endpoint; the response shows its signing secret this once",
          responses=problems(BODY, 409, AUTHENTICATED, BACKEND))
    async def create_webhook(self, data: WebhookRequest, principal: CurrentPrincipal,
                             webhooks: Webhooks) -> CreatedWebhook:
        settings = EndpointSettings(url=data.url, description=data.description,
                                    event_types=tuple(EventType(t.value) for t in data.event_types))
        endpoint, secret = await webhooks.create(principal, settings)
        return CreatedWebhook(secret=secret, **_fields(endpoint))

    @get("/", guards=READ, summary="The tenant's webhook endpoints (never their secrets)",
         responses=problems(AUTHENTICATED, BACKEND))
    async def list_webhooks(self, principal: CurrentPrincipal, webhooks: Webhooks) -> list[WebhookView]:
        return [WebhookView(**_fields(e)) for e in await webhooks.list(principal)]

    @get("/{webhook_id:uuid}", guards=READ, summary="One endpoint", responses=problems(404, AUTHENTICATED, BACKEND))
    async def get_webhook(self, webhook_id: uuid.UUID, principal: CurrentPrincipal, webhooks: Webhooks) -> WebhookView:
        return WebhookView(**_fields(await webhooks.get(principal, webhook_id)))

    @patch("/{webhook_id:uuid}", guards=WRITE, summary="Change an endpoint; `active: true` re-enables it",
           responses=problems(404, BODY, AUTHENTICATED, BACKEND))
    async def update_webhook(self, webhook_id: uuid.UUID, data: WebhookPatchRequest, principal: CurrentPrincipal,
                             webhooks: Webhooks) -> WebhookView:
        event_types = (msgspec.UNSET if data.event_types is msgspec.UNSET
                       else tuple(EventType(t.value) for t in data.event_types))
        changes = EndpointChanges(url=data.url, description=data.description, event_types=event_types,
                                  active=data.active)
        return WebhookView(**_fields(await webhooks.update(principal, webhook_id, changes)))

    @delete("/{webhook_id:uuid}", status_code=HTTP_204_NO_CONTENT, guards=WRITE,
            summary="Remove an endpoint and its delivery history", responses=problems(404, AUTHENTICATED, BACKEND))
    async def delete_webhook(self, webhook_id: uuid.UUID, principal: CurrentPrincipal, webhooks: Webhooks) -> None:
        await webhooks.delete(principal, webhook_id)

    @post("/{webhook_id:uuid}/rotate-secret", status_code=HTTP_200_OK, guards=WRITE,
          summary="A new signing secret, shown this once; the old one keeps signing too for the overlap",
          description=(
              "Deliveries carry `v1=<new>,v1=<previous>` until `previousSecretExpiresAt` (24 hours unless "
              "`overlapHours` says otherwise; 0 switches at once), then the previous secret is erased. "
              "The body is optional."
          ),
          responses=problems(404, BODY, AUTHENTICATED, BACKEND))
    async def rotate_webhook_secret(self, webhook_id: uuid.UUID, principal: CurrentPrincipal, webhooks: Webhooks,
                                    data: RotateSecretRequest | None = None) -> CreatedWebhook:
        overlap = datetime.timedelta(hours=(data or RotateSecretRequest()).overlap_hours)
        endpoint, secret = await webhooks.rotate_secret(principal, webhook_id,
                                                        overlap=overlap)
        return CreatedWebhook(secret=secret, **_fields(endpoint))

    @post("/{webhook_id:uuid}/test", status_code=HTTP_202_ACCEPTED, guards=WRITE,
          summary="Send a `test` event to this endpoint; follow it in its deliveries",
          responses=problems(404, AUTHENTICATED, BACKEND))
    async def test_webhook(self, webhook_id: uuid.UUID, principal: CurrentPrincipal,
                           webhooks: Webhooks) -> WebhookDeliveryView:
        return _delivery(await webhooks.send_test(principal, webhook_id))

    @get("/{webhook_id:uuid}/deliveries", guards=READ, summary="What was sent to this endpoint, newest first",
         responses=problems(400, 404, AUTHENTICATED, BACKEND))
    async def list_webhook_deliveries(
        self, webhook_id: uuid.UUID, principal: CurrentPrincipal, webhooks: Webhooks,
        limit: Annotated[int, Parameter(ge=1, le=PAGE_SIZE_MAX, description="Page size")] = 50,
        cursor: Cursor = None,
        status: Annotated[WebhookDeliveryStatus | None, Parameter(description="Only deliveries in this state")] = None,
    ) -> WebhookDeliveryPage:
        page = await webhooks.deliveries(principal, webhook_id, limit, cursor, status)
        return WebhookDeliveryPage(items=[_delivery(d) for d in page.items], next_cursor=page.next_cursor)
