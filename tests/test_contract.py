"""Schemathesis against the running API server: every operation, authenticated where needed.

No input may make the server answer 5xx, and every response must match the published schema. The
operations come from the checked-in openapi.json, which test_openapi keeps identical to the code.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.conftest import PASSWORD, REPO_ROOT, unique_email

schema = schemathesis.openapi.from_path(REPO_ROOT / "openapi.json")


@pytest.fixture(scope="session")
def credentials(api_server: str) -> tuple[str, str]:
    email = unique_email("contract")
    response = httpx.post(f"{api_server}/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return email, PASSWORD


@pytest.fixture
def auth_headers(api_server: str, credentials: tuple[str, str]) -> dict[str, str]:
    # A fresh session per case: a generated logout or password change must not end the others.
    email, password = credentials
    response = httpx.post(f"{api_server}/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


@schema.parametrize()
# Derandomized: CI explores the same cases every run; widen with --hypothesis-seed locally.
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_honours_its_schema_and_never_fails(case, api_server: str, auth_headers: dict[str, str]) -> None:
    case.call_and_validate(base_url=api_server, headers=auth_headers)
