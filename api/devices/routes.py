"""Push devices (`/v1/devices`) and notification preferences (`/v1/notification-preferences`) of the
signed-in user. Both are a person's, so they need the `account` scope: API keys never have it."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post, put
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from api.auth import requires
from api.dependencies import CurrentPrincipal, Devices
from api.devices.schemas import (
    DeviceRequest,
    DeviceView,
    NotificationPreferencesRequest,
    NotificationPreferencesView,
)
from api.openapi import AUTHENTICATED, BACKEND, BEARER, BODY, problems
from tenants.devices import DeviceRegistration
from tenants.events import EventType
from tenants.notify_models import Device
from tenants.principal import Scope


def _view(device: Device) -> DeviceView:
    return DeviceView(id=device.id, platform=device.platform, token_ending=device.token[-8:],
                      app_version=device.app_version, last_seen_at=device.last_seen_at, created_at=device.created_at)


class DeviceController(Controller):
    path = "/v1/devices"
    tags = ["notifications"]
    guards = [requires(Scope.ACCOUNT)]
    security = BEARER

    @post("/", status_code=HTTP_200_OK,
          summary="Register this phone for push notifications (again on every app start: it refreshes the token)",
          responses=problems(BODY, AUTHENTICATED, BACKEND))
    async def register_device(self, data: DeviceRequest, principal: CurrentPrincipal, devices: Devices) -> DeviceView:
        registration = DeviceRegistration(platform=data.platform, token=data.token, app_version=data.app_version)
        return _view(await devices.register(principal, registration))

    @get("/", summary="The signed-in user's registered devices", responses=problems(AUTHENTICATED, BACKEND))
    async def list_devices(self, principal: CurrentPrincipal, devices: Devices) -> list[DeviceView]:
        return [_view(d) for d in await devices.list(principal)]

    @delete("/{device_id:uuid}", status_code=HTTP_204_NO_CONTENT,
            summary="Stop pushing to a device (call it on logout)", responses=problems(404, AUTHENTICATED, BACKEND))
    async def unregister_device(self, device_id: uuid.UUID, principal: CurrentPrincipal, devices: Devices) -> None:
        await devices.unregister(principal, device_id)


def _preferences(values: dict[EventType, bool]) -> NotificationPreferencesView:
    return NotificationPreferencesView(push={t.value: v for t, v in sorted(values.items())})


class NotificationPreferencesController(Controller):
    path = "/v1/notification-preferences"
    tags = ["notifications"]
    guards = [requires(Scope.ACCOUNT)]
    security = BEARER

    @get("/", summary="Which events are pushed to the signed-in user", responses=problems(AUTHENTICATED, BACKEND))
    async def get_preferences(self, principal: CurrentPrincipal, devices: Devices) -> NotificationPreferencesView:
        return _preferences(await devices.preferences(principal))

    @put("/", summary="Choose which events are pushed; types left out go back to their defaults",
         responses=problems(BODY, AUTHENTICATED, BACKEND))
    async def put_preferences(self, data: NotificationPreferencesRequest, principal: CurrentPrincipal,
                              devices: Devices) -> NotificationPreferencesView:
        chosen = {EventType(t.value): v for t, v in data.push.items()}
        return _preferences(await devices.set_preferences(principal, chosen))
