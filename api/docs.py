"""The interactive API docs, served whole by the API: Swagger UI's assets ship in the `swagger-ui-py` wheel,
so /schema works on a machine without internet (the default plugins load them from a CDN). It must be
Swagger UI 5 or later: the schema is OpenAPI 3.1, which older ones refuse to render."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from litestar.openapi.plugins import OpenAPIRenderPlugin, SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS = "/schema/assets"
SWAGGER_UI = Path(str(resources.files("swagger_ui") / "static"))


def docs_assets() -> Router:
    """GET /schema/assets/<file>: Swagger UI's scripts and styles (public, like the schema itself)."""
    return create_static_files_router(path=ASSETS, directories=[SWAGGER_UI], include_in_schema=False,
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
