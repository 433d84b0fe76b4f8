"""Sending Celery tasks by name: the API never imports the trading code it asks workers to run."""

from __future__ import annotations

import uuid
from functools import partial

import anyio
import msgspec
from celery import Celery

from quorum.settings import Settings
from tenants.exchange_keys import KeyCheckOutcome


def create_task_client(settings: Settings) -> Celery:
    client = Celery("quorum-api", broker=settings.redis_url, backend=settings.redis_url)
    client.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json",
                       broker_connection_retry_on_startup=True)
    return client


class CeleryKeyCheck:
    """KeyCheckGateway over Celery: ids go to a worker; what the exchange said comes back."""

    def __init__(self, client: Celery, timeout: float) -> None:
        self.client = client
        self.timeout = timeout

    async def check(self, tenant_id: uuid.UUID, key_id: uuid.UUID) -> KeyCheckOutcome:
        result = await anyio.to_thread.run_sync(
            # Expires with our patience: a worker that picks it up later would check a key already destroyed.
            partial(self.client.send_task, "quorum.check_exchange_key", args=[str(tenant_id), str(key_id)],
                    expires=self.timeout)
        )
        try:
            value = await anyio.to_thread.run_sync(partial(result.get, timeout=self.timeout, propagate=True))
        finally:
            result.forget()
        return msgspec.convert(value, KeyCheckOutcome)


class CeleryCloses:
    """CloseGateway over Celery: the request's ids go to `quorum.close_positions` (workers/close.py)."""

    def __init__(self, client: Celery) -> None:
        self.client = client

    async def enqueue(self, tenant_id: uuid.UUID, close_id: uuid.UUID) -> None:
        await anyio.to_thread.run_sync(
            partial(self.client.send_task, "quorum.close_positions", args=[str(tenant_id), str(close_id)],
                    ignore_result=True)
        )


class CeleryWebhookQueue:
    """WebhookQueue over Celery: the delivery's ids go to `quorum.deliver_webhook` (workers/notify/tasks.py)."""

    def __init__(self, client: Celery) -> None:
        self.client = client

    async def enqueue(self, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> None:
        await anyio.to_thread.run_sync(
            partial(self.client.send_task, "quorum.deliver_webhook", args=[str(tenant_id), str(delivery_id)],
                    ignore_result=True)
        )


class CeleryWorkers:
    """Which workers are alive: Celery's broadcast ping, answered by each worker within `wait_seconds`."""

    def __init__(self, client: Celery) -> None:
        self.client = client

    async def ping(self, wait_seconds: float) -> list[str]:
        replies = await anyio.to_thread.run_sync(partial(self.client.control.ping, timeout=wait_seconds))
        return [name for reply in replies or [] for name in reply]
