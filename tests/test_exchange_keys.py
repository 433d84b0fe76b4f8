"""Linking exchange keys: encrypted at rest, checked with the exchange by a real worker, shown masked."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from quorum.database import Database, create_app_engine
from quorum.settings import Settings
from tenants.exchange_catalog import CCXT_EXCHANGES
from tenants.scope import TenantScope
from tenants.vault import FieldContext, LocalMasterKeys, Vault, VaultError, generate_master_key
from tenants.vault_commands import rotate_master_key
from tests.conftest import Account, make_settings, register
from tests.fakes.bybit_v5 import FakeBybitV5


def new_key(fake: FakeBybitV5, **permissions: object) -> tuple[str, str]:
    api_key, secret = f"K{uuid.uuid4().hex[:17].upper()}", f"S-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    fake.add_key(api_key, secret, **permissions)
    return api_key, secret


async def link(client: AsyncTestClient, account: Account, **body: object):
    return await client.post("/v1/exchange-keys", headers=account.headers,
                             json={"label": "main", **body})


async def test_a_paper_account_needs_no_secret(client: AsyncTestClient, account: Account) -> None:
    response = await link(client, account, exchange="paper")
    assert response.status_code == 201, response.text
    assert response.json()["apiKeyMask"] == "" and response.json()["exchange"] == "paper"


async def test_a_trading_only_key_is_linked_masked_and_flagged_without_ip_whitelist(
    client: AsyncTestClient, account: Account, fake_bybit: FakeBybitV5, key_check_worker: Path
) -> None:
    api_key, secret = new_key(fake_bybit)
    response = await link(client, account, exchange="bybit", apiKey=api_key, secret=secret)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["apiKeyMask"] == "••••" + api_key[-4:]
    assert body["canWithdraw"] is False and body["ipWhitelisted"] is False
    assert body["warnings"] == ["no_ip_whitelist"]
    assert secret not in response.text and api_key not in response.text
    listed = await client.get("/v1/exchange-keys", headers=account.headers)
    assert [k["id"] for k in listed.json()] == [body["id"]]

    whitelisted_key, whitelisted_secret = new_key(fake_bybit, ips=["203.0.113.9"])
    second = await link(client, account, exchange="bybit", apiKey=whitelisted_key, secret=whitelisted_secret)
    assert second.status_code == 201 and second.json()["warnings"] == []


async def test_a_key_that_can_withdraw_is_refused_with_a_422_that_explains_why(
    client: AsyncTestClient, account: Account, fake_bybit: FakeBybitV5, key_check_worker: Path, settings: Settings
) -> None:
    api_key, secret = new_key(fake_bybit, can_withdraw=True)
    response = await link(client, account, exchange="bybit", apiKey=api_key, secret=secret)
    assert response.status_code == 422, response.text
    assert "withdraw" in response.json()["detail"]
    assert (await client.get("/v1/exchange-keys", headers=account.headers)).json() == []
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM exchange_keys WHERE api_key_last4 = %s",
                            (api_key[-4:],)).fetchone()[0] == 0
        refused = conn.execute("SELECT details FROM audit_events WHERE action = 'exchange_key_refused' "
                               "ORDER BY id DESC LIMIT 1").fetchone()[0]
        assert refused["reason"] == "withdrawal_enabled"


async def test_a_key_the_exchange_rejects_is_not_linked(
    client: AsyncTestClient, account: Account, fake_bybit: FakeBybitV5, key_check_worker: Path
) -> None:
    api_key, _ = new_key(fake_bybit)
    response = await link(client, account, exchange="bybit", apiKey=api_key, secret="the-wrong-secret")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "apiKey"


async def test_unsupported_exchanges_and_missing_secrets_are_named(client: AsyncTestClient, account: Account) -> None:
    unknown = await link(client, account, exchange="notanexchange", apiKey="k", secret="s")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "exchange"
    missing = await link(client, account, exchange="binance", apiKey="abc")
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "secret"


async def test_deleting_a_key_destroys_its_ciphertext(
    client: AsyncTestClient, account: Account, fake_bybit: FakeBybitV5, key_check_worker: Path, settings: Settings
) -> None:
    api_key, secret = new_key(fake_bybit)
    key_id = (await link(client, account, exchange="bybit", apiKey=api_key, secret=secret)).json()["id"]
    assert (await client.delete(f"/v1/exchange-keys/{key_id}", headers=account.headers)).status_code == 204
    assert (await client.get(f"/v1/exchange-keys/{key_id}", headers=account.headers)).status_code == 404
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT count(*) FROM exchange_keys WHERE id = %s", (key_id,)).fetchone()[0] == 0


async def test_another_tenant_cannot_see_or_delete_a_key(client: AsyncTestClient, account: Account) -> None:
    key_id = (await link(client, account, exchange="paper")).json()["id"]
    intruder = await register(client)
    assert (await client.get(f"/v1/exchange-keys/{key_id}", headers=intruder.headers)).status_code == 404
    assert (await client.delete(f"/v1/exchange-keys/{key_id}", headers=intruder.headers)).status_code == 404
    assert (await client.get("/v1/exchange-keys", headers=intruder.headers)).json() == []
    assert (await client.get(f"/v1/exchange-keys/{key_id}", headers=account.headers)).status_code == 200


async def test_a_ciphertext_copied_to_another_row_or_tenant_fails_to_decrypt(settings: Settings) -> None:
    vault = Vault(LocalMasterKeys.from_setting(settings.master_keys))
    database = Database(create_app_engine(settings))
    first, second = await _tenants(settings, 2)
    row, other_row = uuid.uuid4(), uuid.uuid4()
    context = FieldContext(tenant_id=first, table="exchange_keys", row_id=row, field="secret")
    async with TenantScope.of(first).session(database) as session:
        ciphertext = await vault.encrypt(session, context, "s3cret-value")
        assert await vault.decrypt(session, context, ciphertext) == "s3cret-value"
        with pytest.raises(VaultError):
            await vault.decrypt(session, FieldContext(first, "exchange_keys", other_row, "secret"), ciphertext)
        with pytest.raises(VaultError):
            await vault.decrypt(session, FieldContext(first, "exchange_keys", row, "api_key"), ciphertext)
    async with TenantScope.of(second).session(database) as session:
        with pytest.raises(VaultError):
            await vault.decrypt(session, FieldContext(second, "exchange_keys", row, "secret"), ciphertext)
    await database.dispose()


async def test_master_key_rotation_end_to_end(settings: Settings) -> None:
    key_a, key_b = generate_master_key(), generate_master_key()
    only_a = make_settings(settings.database_url, settings.redis_url, master_keys=f"a:{key_a}")
    (tenant,) = await _tenants(settings, 1)
    context = FieldContext(tenant_id=tenant, table="exchange_keys", row_id=uuid.uuid4(), field="secret")
    database = Database(create_app_engine(settings))
    async with TenantScope.of(tenant).session(database) as session:
        ciphertext = await Vault(LocalMasterKeys.from_setting(only_a.master_keys)).encrypt(session, context, "value")

    # The shared test database also holds other tests' data keys, under the session's master key.
    b_then_a = make_settings(settings.database_url, settings.redis_url,
                             master_keys=f"b:{key_b},a:{key_a},{settings.master_keys}")
    report = rotate_master_key(b_then_a)
    assert report.rewrapped >= 1 and report.failed == 0
    assert rotate_master_key(b_then_a).rewrapped == 0  # idempotent

    only_b = Vault(LocalMasterKeys.from_setting(f"b:{key_b}"))  # A removed
    async with TenantScope.of(tenant).session(database) as session:
        assert await only_b.decrypt(session, context, ciphertext) == "value"
    await database.dispose()
    # Hand the other tests their master key back.
    restore = rotate_master_key(make_settings(settings.database_url, settings.redis_url,
                                              master_keys=f"{settings.master_keys},b:{key_b}"))
    assert restore.failed == 0


def test_the_exchange_catalog_matches_the_installed_ccxt() -> None:
    import ccxt

    assert set(ccxt.exchanges) == CCXT_EXCHANGES, "regenerate tenants/exchange_catalog.py"


async def _tenants(settings: Settings, count: int) -> list[uuid.UUID]:
    """Tenants made directly with the owner role, for vault tests that need no API."""
    ids = [uuid.uuid4() for _ in range(count)]
    with psycopg.connect(settings.database_url) as conn:
        for tenant_id in ids:
            conn.execute("INSERT INTO tenants (id, name, is_active, created_at, updated_at) "
                         "VALUES (%s, 'vault-test', true, now(), now())", (tenant_id,))
        conn.commit()
    return ids
