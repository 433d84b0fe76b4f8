"""Observability: Prometheus metrics of the API and the workers, and request ids that follow the work.

Everything runs for real: the API in process and as `quorum serve` with two uvicorn workers, Celery
workers as processes on the test Redis, the GPT brain against the local OpenAI-compatible server.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis as redis_sync
from celery import Celery
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from quorum.embedded import free_port, wait_for_port
from quorum.logs import cycle_id_var, request_id_var
from quorum.settings import Settings
from tests.conftest import REPO_ROOT, Account, child_environ, eventually, make_settings
from tests.fakes.bybit_v5 import FakeBybitV5

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def request_count(samples: Samples, method: str, route: str, status: str) -> float:
    return value(samples, "quorum_http_request_duration_seconds_count", method=method, route=route, status=status)


async def scrape(client: AsyncTestClient[Litestar], **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))


# --- the API ----------------------------------------------------------------------------------------

async def test_latency_is_recorded_per_route_template_never_per_raw_path(
    client: AsyncTestClient[Litestar], account: Account
) -> None:
    before = await scrape(client)
    bot_ids = [str(uuid.uuid4()) for _ in range(3)]
    for bot_id in bot_ids:
        assert (await client.get(f"/v1/bots/{bot_id}", headers=account.headers)).status_code == 404
    assert (await client.get("/v1/me", headers=account.headers)).status_code == 200
    assert (await client.options(f"/v1/bots/{bot_ids[0]}")).status_code == 204
    assert (await client.get(f"/nothing-here/{bot_ids[0]}")).status_code == 404
    assert (await client.request("BREW", "/health")).status_code in (400, 405)

    response = await client.get("/metrics")
    after = parse(response.text)
    assert request_count(after, "GET", "/v1/bots/{bot_id}", "4xx") - request_count(
        before, "GET", "/v1/bots/{bot_id}", "4xx") == 3
    assert request_count(after, "GET", "/v1/me", "2xx") > request_count(before, "GET", "/v1/me", "2xx")
    assert request_count(after, "OPTIONS", "/v1/bots/{bot_id}", "2xx") >= 1
    assert request_count(after, "GET", "unmatched", "4xx") >= 1
    assert request_count(after, "other", "unmatched", "4xx") >= 1  # the router refused it before choosing
    # No id, raw path or client-chosen method ever becomes a label: the series stay bounded.
    for bot_id in bot_ids:
        assert bot_id not in response.text
    assert "BREW" not in response.text and "nothing-here" not in response.text
    assert value(after, "quorum_http_requests_in_flight") >= 1  # this scrape, at least
    assert value(after, "quorum_broker_up") == 1


async def test_metrics_are_not_part_of_the_public_api_schema(client: AsyncTestClient[Litestar]) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert "/metrics" not in schema["paths"]


async def test_queue_depth_counts_the_tasks_waiting_in_each_celery_queue(settings: Settings) -> None:
    # A Redis database no worker consumes from, so the tasks stay queued while we look.
    broker = redis_db(settings.redis_url, 7 if not settings.redis_url.endswith("/7") else 8)
    queued = make_settings(settings.database_url, broker)
    redis_sync.Redis.from_url(broker).delete("celery", "cycles")
    sender = Celery("metrics-test", broker=broker)
    from api.app import create_app

    async with AsyncTestClient(app=create_app(queued)) as client:
        empty = await scrape(client)
        for _ in range(3):
            sender.send_task("quorum.ping", queue="cycles")
        sender.send_task("quorum.ping")
        filled = await scrape(client)
    sender.close()
    redis_sync.Redis.from_url(broker).delete("celery", "cycles")
    assert value(empty, "quorum_celery_queue_length", queue="cycles") == 0
    assert value(filled, "quorum_celery_queue_length", queue="cycles") == 3
    assert value(filled, "quorum_celery_queue_length", queue="celery") == 1
    assert value(filled, "quorum_broker_up") == 1


@contextlib.contextmanager
def silent_redis() -> Iterator[str]:
    """A 'Redis' that accepts connections and never answers: the worst kind of outage for a scrape."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


async def test_metrics_answer_while_redis_hangs_and_need_the_token_when_one_is_set(settings: Settings) -> None:
    from api.app import create_app

    token = uuid.uuid4().hex
    with silent_redis() as hung:
        app = create_app(make_settings(settings.database_url, hung, metrics_token=token))
        async with AsyncTestClient(app=app) as client:
            refused = await client.get("/metrics")
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
            samples = await scrape(client, Authorization=f"Bearer {token}")
    assert refused.status_code == wrong.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert value(samples, "quorum_broker_up") == 0
    assert not [key for key in samples if key[0] == "quorum_celery_queue_length"], "no depth is better than a wrong one"
    assert request_count(samples, "GET", "/metrics", "4xx") >= 2


def _worker_pids(directory: Path) -> set[int]:
    return {int(m.group(1)) for p in directory.iterdir() if (m := re.fullmatch(r"gauge_livesum_(\d+)\.db", p.name))}


def _pids_that_served(directory: Path) -> set[int]:
    return {int(m.group(1)) for p in directory.iterdir() if (m := re.fullmatch(r"histogram_(\d+)\.db", p.name))}


def test_two_uvicorn_workers_answer_metrics_for_both(settings: Settings, scratch_dir: Path) -> None:
    tmp = scratch_dir / f"serve-{uuid.uuid4().hex[:8]}"  # `quorum serve` makes its metrics folder in here
    tmp.mkdir()
    port = free_port()
    env = child_environ(settings, PORT=str(port), TMPDIR=str(tmp), METRICS_TOKEN="")
    server = subprocess.Popen([sys.executable, "-m", "quorum.cli", "serve", "--workers", "2"], env=env, cwd=REPO_ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, 60)
        (directory,) = tmp.glob("quorum-metrics-*")
        deadline = time.monotonic() + 60
        while len(_worker_pids(directory)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = _worker_pids(directory)
        assert len(workers) == 2

        def get_health(_: int) -> int:
            # A new connection each time, so the kernel hands requests to either process.
            return httpx.get(f"{base}/health", timeout=10).status_code

        sent = 0
        with ThreadPoolExecutor(8) as pool:
            while _pids_that_served(directory) < workers and time.monotonic() < deadline:
                assert set(pool.map(get_health, range(40))) == {200}
                sent += 40
        assert _pids_that_served(directory) >= workers, "both processes served requests"

        for _ in range(4):  # whichever process answers, it reports the requests of both
            samples = parse(httpx.get(f"{base}/metrics", timeout=10).text)
            assert request_count(samples, "GET", "/health", "2xx") == sent

        # A worker that dies is replaced; what it counted stays counted, and nothing of it is in flight.
        victim = next(iter(workers))
        subprocess.run(["kill", "-9", str(victim)], check=True)
        deadline = time.monotonic() + 60
        while (len(_worker_pids(directory) - {victim}) < 2) and time.monotonic() < deadline:
            time.sleep(0.1)
        samples = parse(httpx.get(f"{base}/metrics", timeout=10).text)
        assert request_count(samples, "GET", "/health", "2xx") == sent
        assert value(samples, "quorum_http_requests_in_flight") == 1  # the scrape itself
    finally:
        server.terminate()
        server.wait(30)
    assert not list(tmp.glob("quorum-metrics-*")), "the metrics folder goes with the server"


# --- the workers ------------------------------------------------------------------------------------

@pytest.fixture
def metrics_worker(settings: Settings) -> Iterator[tuple[str, str]]:
    """A real worker consuming a queue of its own, serving its metrics on a free port: (queue, metrics URL)."""
    queue, port = f"metrics-{uuid.uuid4().hex[:8]}", free_port()
    env = child_environ(settings, WORKER_METRICS_PORT=str(port))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool", "threads",
         "--concurrency", "2", "-Q", queue, "--loglevel", "WARNING", "-n", f"{queue}@%h"],
        env=env, cwd=REPO_ROOT,
    )
    try:
        wait_for_port(port, 90)
        yield queue, f"http://127.0.0.1:{port}/metrics"
    finally:
        worker.terminate()
        worker.wait(30)


def test_a_worker_serves_metrics_that_count_its_tasks_by_name_and_outcome(
    settings: Settings, metrics_worker: tuple[str, str]
) -> None:
    queue, url = metrics_worker
    sender = Celery("metrics-test", broker=settings.redis_url, backend=settings.redis_url)
    try:
        assert sender.send_task("quorum.ping", queue=queue).get(timeout=90) == "pong"
        assert sender.send_task("quorum.ping", queue=queue).get(timeout=30) == "pong"
        failed = sender.send_task("quorum.check_exchange_key", args=["not-a-uuid", "nor-this"], queue=queue)
        with pytest.raises(ValueError):
            failed.get(timeout=60)
    finally:
        sender.close()
    samples = parse(httpx.get(url, timeout=10).text)
    assert value(samples, "quorum_task_duration_seconds_count", task="quorum.ping", outcome="success") == 2
    assert value(samples, "quorum_task_duration_seconds_count", task="quorum.check_exchange_key",
                 outcome="failure") == 1
    assert value(samples, "quorum_task_failures_total", task="quorum.check_exchange_key", exception="ValueError") == 1


def test_classified_exchange_errors_are_counted_by_exchange_kind_and_action() -> None:
    from workers.exchanges.bybit import bybit_error

    labels = {"exchange": "bybit", "kind": "RateLimited", "action": "back_off"}
    before = REGISTRY.get_sample_value("quorum_exchange_errors_total", labels) or 0.0
    error = bybit_error(10006, "Too many visits!", creating=False)
    assert error.action.value == "back_off"
    assert REGISTRY.get_sample_value("quorum_exchange_errors_total", labels) == before + 1


async def test_llm_tokens_are_counted_by_model_as_the_server_reports_them() -> None:
    from tests.brain.builders import PRICE, SYMBOL, answer, bot, insights
    from tests.fakes.openai_server import FakeOpenAI, completion
    from workers.brain.gpt import GptBrain, GptBrainConfig

    model = "gpt-4o-mini-2024-07-18"

    def tokens(kind: str) -> float:
        return REGISTRY.get_sample_value("quorum_llm_tokens_total", {"model": model, "kind": kind}) or 0.0

    before = tokens("prompt"), tokens("completion")
    with FakeOpenAI() as server:
        server.reply(completion(answer(), model=model, prompt_tokens=1500, completion_tokens=70))
        brain = GptBrain(GptBrainConfig(openai_base_url=server.base_url, openai_api_key="test-key"))
        try:
            config = bot()
            result = await brain.propose(tenant_id=uuid.uuid4(), bot_id=uuid.uuid4(), constraints=config.constraints(),
                                         symbol=SYMBOL, price=PRICE, insights=insights())
        finally:
            await brain.aclose()
    assert result.usage is not None and result.usage.model == model
    assert (tokens("prompt") - before[0], tokens("completion") - before[1]) == (1500, 70)


def test_cycle_and_decision_observations_are_exposed() -> None:
    from workers.metrics import observe_cycle, observe_decision

    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    cycles = sample("quorum_cycle_duration_seconds_count", {"outcome": "completed"})
    vetoed = sample("quorum_decisions_total", {"brain": "rules", "action": "OPEN_LONG", "vetoed": "true"})
    observe_cycle(1.5, "completed")
    observe_decision("rules", "OPEN_LONG", vetoed=True)
    assert sample("quorum_cycle_duration_seconds_count", {"outcome": "completed"}) == cycles + 1
    assert sample("quorum_decisions_total", {"brain": "rules", "action": "OPEN_LONG", "vetoed": "true"}) == vetoed + 1


# --- ids that follow the work ----------------------------------------------------------------------

async def test_the_request_id_is_on_the_worker_log_lines_of_the_task_the_request_caused(
    client: AsyncTestClient[Litestar], account: Account, fake_bybit: FakeBybitV5, key_check_worker: Path
) -> None:
    api_key, secret = f"K{uuid.uuid4().hex[:17].upper()}", f"S-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    fake_bybit.add_key(api_key, secret)
    request_id = f"trace-{uuid.uuid4().hex}"
    response = await client.post("/v1/exchange-keys", headers={**account.headers, "X-Request-ID": request_id},
                                 json={"label": "traced", "exchange": "bybit", "apiKey": api_key, "secret": secret})
    assert response.status_code == 201, response.text  # a worker checked the key with the exchange
    assert response.headers["x-request-id"] == request_id

    def stamped() -> list[str]:
        log = key_check_worker.read_text(errors="replace").splitlines()
        return [line for line in log if line.endswith(f"[request_id={request_id}]")]

    await eventually(lambda: any("succeeded" in line for line in stamped()))
    lines = stamped()
    # Celery's verdict on the task, and the task's own work: the exchange client's requests (DEBUG here).
    assert any("Task quorum.check_exchange_key[" in line and "succeeded" in line for line in lines), lines
    assert any("/v5/user/query-api" in line for line in lines), lines


def test_tasks_enqueued_during_a_request_or_cycle_carry_its_ids(settings: Settings) -> None:
    broker = redis_db(settings.redis_url, 7 if not settings.redis_url.endswith("/7") else 8)
    queue = f"ids-{uuid.uuid4().hex[:8]}"
    sender = Celery("ids-test", broker=broker)
    import workers.celery_app  # noqa: F401 - connects the signals, as in every worker

    request_token, cycle_token = request_id_var.set("req-123"), cycle_id_var.set("cycle-456")
    try:
        sender.send_task("quorum.ping", queue=queue)
    finally:
        request_id_var.reset(request_token)
        cycle_id_var.reset(cycle_token)
    sender.send_task("quorum.ping", queue=queue)  # outside any request: no ids
    sender.close()
    raw = redis_sync.Redis.from_url(broker)
    messages = [json.loads(m) for m in raw.lrange(queue, 0, -1)]
    raw.delete(queue)
    with_ids, without = sorted(messages, key=lambda m: "quorum_request_id" in m["headers"], reverse=True)
    assert with_ids["headers"]["quorum_request_id"] == "req-123"
    assert with_ids["headers"]["quorum_cycle_id"] == "cycle-456"
    assert "quorum_request_id" not in without["headers"] and "quorum_cycle_id" not in without["headers"]
