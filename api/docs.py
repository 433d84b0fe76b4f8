"""The interactive API docs, served whole by the API: Swagger UI's assets ship in the `swagger-ui-bundle` wheel,
so /schema works on a machine without internet (the default plugins load them from a CDN)."""

from __future__ import annotations

from litestar.openapi.plugins import OpenAPIRenderPlugin, SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/schema/assets"


def docs_assets() -> Router:
    """GET /schema/assets/<file>: Swagger UI's scripts and styles (public, like the schema itself)."""
    return create_static_files_router(path=ASSETS, directories=[swagger_ui_path], include_in_schema=False,
                                      opt={"exclude_from_auth": True})


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI at /schema and /schema/swagger, from the assets above; no request leaves for a CDN."""
    return [
        SwaggerRenderPlugin(
            path=["/", "/swagger"],
            js_url=f"{ASSETS}/swagger-ui-bundle.js",
            css_url=f"{ASSETS}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS}/favicon-32x32.png'>",
        )
    ]
