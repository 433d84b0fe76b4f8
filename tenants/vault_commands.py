"""`quorum rotate-master-key`: re-wrap every tenant data key under the active master key.

It runs as the owner role (DATABASE_URL): the one explicit path that reads every tenant's wrapped key.
The data keys themselves do not change, so no secret needs re-encrypting.
"""

from __future__ import annotations

import argparse

import msgspec
import psycopg

from quorum.database import sync_url
from quorum.settings import Settings, get_settings
from tenants.vault import LocalMasterKeys, VaultError, generate_master_key


class RotationReport(msgspec.Struct, frozen=True):
    total: int
    rewrapped: int
    already_current: int
    failed: int


def rotate_master_key(settings: Settings) -> RotationReport:
    keys = LocalMasterKeys.from_setting(settings.master_keys)
    url = sync_url(settings.database_url).replace("postgresql+psycopg://", "postgresql://")
    rewrapped = current = failed = 0
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, tenant_id, master_key_id, wrapped_key FROM tenant_data_keys FOR UPDATE"
        ).fetchall()
        for row_id, tenant_id, key_id, wrapped in rows:
            if key_id == keys.active_key_id:
                current += 1
                continue
            try:
                data_key = keys.unwrap(key_id, tenant_id, bytes(wrapped))
            except VaultError:
                failed += 1
                continue
            new_id, new_wrapped = keys.wrap(tenant_id, data_key)
            conn.execute(
                "UPDATE tenant_data_keys SET master_key_id = %s, wrapped_key = %s, updated_at = now() WHERE id = %s",
                (new_id, new_wrapped, row_id),
            )
            rewrapped += 1
        conn.commit()
    return RotationReport(total=len(rows), rewrapped=rewrapped, already_current=current, failed=failed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generate", action="store_true", help="print a new random master key and exit")


def run(args: argparse.Namespace) -> int:
    if args.generate:
        print(generate_master_key())
        return 0
    report = rotate_master_key(get_settings())
    print(f"data keys: {report.total} total, {report.rewrapped} re-wrapped, "
          f"{report.already_current} already under the active key, {report.failed} failed")
    return 1 if report.failed else 0
