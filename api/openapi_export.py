"""`quorum openapi`: the schema the code serves, as the JSON checked in at openapi.json."""

from __future__ import annotations

import argparse
import json
import sys

from quorum.settings import load_settings, repo_root

# The schema does not depend on where the servers are; these only let the app be built.
_EXPORT_ENV = {"DATABASE_URL": "postgresql://export@localhost/export", "REDIS_URL": "redis://localhost/0"}


def render_openapi() -> str:
    from api.app import create_app

    app = create_app(load_settings(_EXPORT_ENV))
    return json.dumps(app.openapi_schema.to_schema(), indent=2, sort_keys=True) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write", action="store_true", help="write openapi.json at the repository root")


def run(args: argparse.Namespace) -> int:
    text = render_openapi()
    if args.write:
        (repo_root() / "openapi.json").write_text(text)
    else:
        sys.stdout.write(text)
    return 0

