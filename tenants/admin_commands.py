"""`quorum admin`: make a user a platform operator, or stop them being one, and list the operators.

It runs as the owner role (DATABASE_URL), the only role that may write `platform_admins`: no API route
can grant operator rights, so a compromised account (or tenant owner) cannot raise itself.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys

import msgspec
import psycopg
from uuid_utils.compat import uuid7

from quorum.database import sync_url
from quorum.settings import Settings, get_settings
from tenants.accounts import normalise_email


class AdminCommandError(RuntimeError):
    pass


class Operator(msgspec.Struct, frozen=True):
    email: str
    tenant_id: str
    granted_by: str
    granted_at: str


def _connect(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(sync_url(settings.database_url).replace("postgresql+psycopg://", "postgresql://"))


def grant(settings: Settings, email: str, granted_by: str) -> bool:
    """Make the user with `email` an operator; False if they already were."""
    with _connect(settings) as conn:
        user = conn.execute("SELECT id FROM users WHERE email = %s", (normalise_email(email),)).fetchone()
        if user is None:
            raise AdminCommandError(f"no user with the email {email!r}")
        inserted = conn.execute(
            "INSERT INTO platform_admins (id, user_id, granted_by, created_at, updated_at) "
            "VALUES (%s, %s, %s, now(), now()) ON CONFLICT (user_id) DO NOTHING",
            (uuid7(), user[0], granted_by[:120]),
        ).rowcount
        conn.commit()
    return inserted == 1


def revoke(settings: Settings, email: str) -> bool:
    """Stop the user with `email` being an operator; False if they were not one."""
    with _connect(settings) as conn:
        removed = conn.execute(
            "DELETE FROM platform_admins a USING users u WHERE a.user_id = u.id AND u.email = %s",
            (normalise_email(email),),
        ).rowcount
        conn.commit()
    return removed > 0


def operators(settings: Settings) -> list[Operator]:
    with _connect(settings) as conn:
        rows = conn.execute(
            "SELECT u.email, u.tenant_id, a.granted_by, a.created_at FROM platform_admins a "
            "JOIN users u ON u.id = a.user_id ORDER BY a.created_at"
        ).fetchall()
    return [Operator(email=r[0], tenant_id=str(r[1]), granted_by=r[2], granted_at=r[3].isoformat()) for r in rows]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="admin_command", required=True)
    sub.add_parser("grant", help="make a registered user a platform operator").add_argument("email")
    sub.add_parser("revoke", help="stop a user being a platform operator").add_argument("email")
    sub.add_parser("list", help="list the platform operators")


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        if args.admin_command == "grant":
            who = f"{getpass.getuser()}@{socket.gethostname()}"
            changed = grant(settings, args.email, who)
            print(f"{args.email} is {'now' if changed else 'already'} a platform operator")
        elif args.admin_command == "revoke":
            changed = revoke(settings, args.email)
            print(f"{args.email} {'is no longer' if changed else 'was not'} a platform operator")
        else:
            for operator in operators(settings):
                print(f"{operator.email}\ttenant {operator.tenant_id}\tgranted {operator.granted_at} "
                      f"by {operator.granted_by}")
    except AdminCommandError as exc:
        print(f"quorum admin: {exc}", file=sys.stderr)
        return 1
    return 0
