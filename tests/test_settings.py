"""The service refuses to start in production with unsafe settings, and says which."""

from __future__ import annotations

import pytest

from quorum.settings import SettingsError, load_settings
from tenants.vault import generate_master_key

BASE = {"DATABASE_URL": "postgresql://owner@db/quorum", "REDIS_URL": "redis://cache:6379/0"}


def test_production_refuses_the_default_secret_and_names_it() -> None:
    settings = load_settings({**BASE, "ENVIRONMENT": "production", "DATABASE_APP_URL": "postgresql://app:pw@db/q"})
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        settings.check()


def test_production_refuses_a_missing_database_url() -> None:
    settings = load_settings({"ENVIRONMENT": "production", "REDIS_URL": "redis://x", "SECRET_KEY": "k" * 40})
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        settings.check()


def test_production_starts_with_real_secrets() -> None:
    settings = load_settings({**BASE, "ENVIRONMENT": "production", "SECRET_KEY": "s" * 48,
                              "DATABASE_APP_URL": "postgresql://app:pw@db/quorum",
                              "MASTER_KEYS": "k1:" + generate_master_key(), "API_KEY_HASH_KEY": "h" * 40,
                              "METRICS_TOKEN": "m" * 40})
    settings.check(api=True)
    assert settings.effective_log_format == "json"


def test_production_api_refuses_to_start_without_a_metrics_token_but_workers_need_none() -> None:
    real = {**BASE, "ENVIRONMENT": "production", "SECRET_KEY": "s" * 48, "DATABASE_APP_URL": "postgresql://app:pw@db/q",
            "MASTER_KEYS": "k1:" + generate_master_key(), "API_KEY_HASH_KEY": "h" * 40}
    for token in ("", "short"):
        with pytest.raises(SettingsError, match="METRICS_TOKEN"):
            load_settings({**real, "METRICS_TOKEN": token}).check(api=True)
    load_settings(real).check()  # a worker or beat serves no /metrics behind the token
    load_settings({**real, "METRICS_TOKEN": "m" * 32}).check(api=True)
    load_settings({**BASE, "ENVIRONMENT": "development"}).check(api=True)  # outside production it stays optional


def test_production_refuses_to_start_without_a_master_key() -> None:
    settings = load_settings({**BASE, "ENVIRONMENT": "production", "SECRET_KEY": "s" * 48, "MASTER_KEYS": "",
                              "DATABASE_APP_URL": "postgresql://app:pw@db/q", "API_KEY_HASH_KEY": "h" * 40})
    with pytest.raises(SettingsError, match="MASTER_KEYS"):
        settings.check()


def test_bad_values_are_reported_by_name() -> None:
    with pytest.raises(SettingsError, match="port"):
        load_settings({**BASE, "PORT": "eighty"})


def test_the_app_role_url_is_derived_from_the_owner_url() -> None:
    settings = load_settings({**BASE, "DATABASE_APP_PASSWORD": "pw"})
    assert settings.app_database_url == "postgresql://quorum_app:pw@db/quorum"


def test_production_refuses_the_development_database_password_in_either_url() -> None:
    for url_setting in ("DATABASE_URL", "DATABASE_APP_URL"):
        settings = load_settings({**BASE, "ENVIRONMENT": "production", "SECRET_KEY": "s" * 48,
                                  "DATABASE_APP_URL": "postgresql://app:pw@db/quorum",
                                  url_setting: "postgresql://app:quorum-app-dev@db/quorum",
                                  "MASTER_KEYS": "k1:" + generate_master_key(), "API_KEY_HASH_KEY": "h" * 40})
        with pytest.raises(SettingsError, match=f"{url_setting} uses the development database password"):
            settings.check()


def test_production_ignores_the_exchange_url_overrides_for_tests() -> None:
    overrides = {**BASE, "EXCHANGE_API_OVERRIDES": "bybit=http://127.0.0.1:9000"}
    assert load_settings({**overrides, "ENVIRONMENT": "production"}).exchange_api_overrides == ""
    assert load_settings({**overrides, "ENVIRONMENT": "test"}).exchange_api_overrides == "bybit=http://127.0.0.1:9000"
