"""`quorum db`: create the database and the application role, and apply migrations as the owner."""

from __future__ import annotations

import argparse
import logging
from urllib.parse import urlsplit, urlunsplit

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql

from quorum.database import sync_url
from quorum.settings import Settings, get_settings

log = logging.getLogger(__name__)


class BootstrapError(RuntimeError):
    pass


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "tenants:migrations")
    cfg.set_main_option("sqlalchemy.url", sync_url(settings.database_url).replace("%", "%%"))
    cfg.attributes["app_role"] = settings.database_app_role
    return cfg


def _conninfo(url: str, dbname: str | None = None) -> str:
    parts = urlsplit(sync_url(url).replace("postgresql+psycopg://", "postgresql://"))
    path = f"/{dbname}" if dbname else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def ensure_database(settings: Settings) -> None:
    """Create the database when it does not exist (embedded and test servers; production has one)."""
    name = database_name(settings.database_url)
    with psycopg.connect(_conninfo(settings.database_url, "postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            log.info("created database", extra={"database": name})


def ensure_app_role(settings: Settings) -> None:
    """Create the application role if missing, and refuse one that could bypass row-level security."""
    role = settings.database_app_role
    name = database_name(settings.database_url)
    with psycopg.connect(_conninfo(settings.database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", (role,)
        ).fetchone()
        if row is None:
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT"
                ).format(sql.Identifier(role), sql.Literal(settings.database_app_password))
            )
            log.info("created application role", extra={"role": role})
        elif row[0] or row[1]:
            raise BootstrapError(f"role {role} is a superuser or bypasses row-level security; it must not")
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(name), sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(role)))


def migrate(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)


def bootstrap(settings: Settings) -> None:
    ensure_database(settings)
    ensure_app_role(settings)
    migrate(settings)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="db_command", required=True)
    sub.add_parser("bootstrap", help="create the database and app role if missing, then migrate")
    sub.add_parser("upgrade", help="apply migrations")
    rev = sub.add_parser("revision", help="write a new migration from the models (autogenerate)")
    rev.add_argument("-m", "--message", required=True)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.db_command == "bootstrap":
        bootstrap(settings)
    elif args.db_command == "upgrade":
        migrate(settings)
    else:
        command.revision(alembic_config(settings), message=args.message, autogenerate=True)
    return 0
