"""deploy/: the image, the compose file and the Kubernetes manifests agree with the code.

No container engine runs here, so the files are checked by reading them: they parse;
every ``VECRON_*`` variable they set is one :meth:`Settings.from_env` reads; the URLs
they set open with the real backends (nothing is contacted); each role's command
parses with the real ``vecron`` parser; the probes ask for paths the real app answers
with 200.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from vecron.backends.breaker import RedisCircuitBreaker, open_breaker
from vecron.backends.database.engine import normalize_database_url
from vecron.backends.objectstore import MinioObjectStore, open_object_store
from vecron.backends.queue import MemoryQueue, open_queue
from vecron.cli import build_parser
from vecron.runtime.metrics import Metrics
from vecron.settings import ENV_PREFIX, Settings
from vecron.spec.schedules import parse_duration
from vecron.stores import open_stores
from vecron.webhook.app import create_app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BACKENDS = ("postgres", "redis", "nats", "minio")
#: The distributed roles of the issue, by the ``vecron`` sub-command that runs each.
ROLE_COMMANDS = ("serve", "worker", "scheduler", "reconcile")


class _Recorder(Mapping[str, str]):
    """An empty environment that remembers every name it was asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def variables_the_code_reads() -> set[str]:
    recorder = _Recorder()
    Settings.from_env(recorder)
    return {name for name in recorder.asked if name.startswith(ENV_PREFIX)}


def load_all(path: Path) -> list[Any]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text()) if doc is not None]


def compose() -> dict[str, Any]:
    (document,) = load_all(DEPLOY / "compose.yaml")
    assert isinstance(document, dict)
    return document


def manifests() -> list[dict[str, Any]]:
    found = [doc for path in sorted(K8S.glob("*.yaml")) for doc in load_all(path)]
    assert all(isinstance(doc, dict) and "kind" in doc for doc in found)
    return found


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc["kind"] == kind]


def deployments() -> dict[str, dict[str, Any]]:
    """The role's sub-command -> its Deployment's one container."""
    found: dict[str, dict[str, Any]] = {}
    for deployment in of_kind("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        found[container["args"][0]] = container
    return found


def compose_environment(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    return {str(k): str(v) for k, v in environment.items()}


def parse(command: list[str]) -> argparse.Namespace:
    """``vecron COMMAND…`` parsed by the real parser (a usage error fails the test)."""
    args = build_parser().parse_args([str(part) for part in command])
    assert callable(getattr(args, "handler", None))
    return args


def http_port(args: argparse.Namespace) -> int:
    """The port a role serves HTTP on: the API's, or (``--port``) only its probes; 0
    when it serves none."""
    port: int = getattr(args, "port", 0) or 0
    if "serve" in getattr(args, "roles", frozenset()):
        assert port, "the API needs a port"
    return port


def dockerfile_instruction(name: str) -> list[str]:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    (line,) = [line for line in lines if line.startswith(f"{name} ")]
    value: list[str] = json.loads(line.removeprefix(f"{name} "))
    return value


# --- the settings ------------------------------------------------------------------------


def test_the_variables_the_code_reads_are_found() -> None:
    names = variables_the_code_reads()
    assert len(names) >= 5
    assert all(re.fullmatch(r"VECRON_[A-Z0-9_]+", name) for name in names)


@pytest.mark.parametrize("source", ["compose", "k8s"])
def test_only_variables_the_code_reads_are_set(source: str) -> None:
    readable = variables_the_code_reads()
    if source == "compose":
        services = compose()["services"].values()
        names = {name for service in services for name in compose_environment(service)}
    else:
        names = set()
        for config in of_kind("ConfigMap"):
            names |= set(config.get("data", {}))
        for secret in of_kind("Secret"):
            names |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
        for container in deployments().values():
            names |= {item["name"] for item in container.get("env", [])}
    set_here = {name for name in names if name.startswith(ENV_PREFIX)}
    assert set_here, "no VECRON_* variable is set"
    assert set_here <= readable, f"set but never read: {sorted(set_here - readable)}"


def distributed_environments() -> Iterator[tuple[str, dict[str, str]]]:
    for name in ROLE_COMMANDS:
        yield f"compose:{name}", compose_environment(compose()["services"][name])
    values: dict[str, str] = {}
    for config in of_kind("ConfigMap"):
        values.update(config["data"])
    for secret in of_kind("Secret"):
        values.update(secret["stringData"])
    yield "k8s", values


@pytest.mark.parametrize(("where", "environment"), list(distributed_environments()))
async def test_the_urls_are_distributed_and_open_with_the_real_backends(
    where: str, environment: dict[str, str]
) -> None:
    settings = Settings.from_env(environment)
    assert settings.database_url
    assert settings.object_store_url
    assert settings.queue_url
    assert settings.redis_url
    assert settings.secret_key
    assert normalize_database_url(settings.database_url).get_backend_name() == "postgresql"
    objects = open_object_store(settings.object_store_url)
    try:
        assert isinstance(objects, MinioObjectStore)
    finally:
        await objects.close()
    queue = open_queue(settings.queue_url)
    try:
        assert not isinstance(queue, MemoryQueue)
        assert settings.queue_url.startswith("nats://")
    finally:
        await queue.close()
    breaker = open_breaker(settings.redis_url)
    try:
        assert isinstance(breaker, RedisCircuitBreaker)
    finally:
        await breaker.close()


# --- the roles -------------------------------------------------------------------------


def test_the_image_runs_vecron_and_its_default_command_is_a_role() -> None:
    entrypoint = dockerfile_instruction("ENTRYPOINT")
    assert entrypoint[-1] == "vecron"
    assert parse(dockerfile_instruction("CMD")).command == "serve"
    text = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which is missing"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for kept in ("pyproject.toml", "README.md", "vecron/"):
        assert f"!{kept}" in ignored


def test_compose_runs_the_backends_and_the_four_roles() -> None:
    services = compose()["services"]
    assert set(BACKENDS) | set(ROLE_COMMANDS) <= set(services)
    for name in BACKENDS:
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    assert {"--jetstream", "-js"} & set(services["nats"]["command"])
    for name in ROLE_COMMANDS:
        service = services[name]
        args = parse(service["command"])
        assert args.command == name
        depends = service["depends_on"]
        assert {backend: depends[backend]["condition"] for backend in BACKENDS} == dict.fromkeys(
            BACKENDS, "service_healthy"
        )
        grace = getattr(args, "grace", None)
        if grace is not None:  # the engine must wait longer than vecron drains
            assert parse_duration(service["stop_grace_period"]) > parse_duration(grace)


def test_kubernetes_deploys_the_four_roles() -> None:
    found = deployments()
    assert set(found) == set(ROLE_COMMANDS)
    for deployment in of_kind("Deployment"):
        spec = deployment["spec"]
        (container,) = spec["template"]["spec"]["containers"]
        args = parse(container["args"])
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        requests = container["resources"]["requests"]
        assert requests.get("cpu"), f"{args.command}: no CPU request"
        assert requests.get("memory"), f"{args.command}: no memory request"
        names = {
            ref.get("configMapRef", ref.get("secretRef", {}))["name"]
            for ref in container["envFrom"]
        }
        defined = {doc["metadata"]["name"] for doc in of_kind("ConfigMap") + of_kind("Secret")}
        assert names <= defined
        grace = getattr(args, "grace", None)
        if grace is not None:
            assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > parse_duration(grace)


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = load_all(K8S / "kustomization.yaml")
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


# --- probes ------------------------------------------------------------------------------


def probes() -> Iterator[tuple[str, str, int]]:
    """(where, path, port) of every HTTP probe and healthcheck."""
    for command, container in deployments().items():
        ports = {port.get("name"): port["containerPort"] for port in container.get("ports", [])}
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = container.get(kind)
            if probe is None:
                continue
            port = probe["httpGet"]["port"]
            yield f"k8s:{command}:{kind}", probe["httpGet"]["path"], ports.get(port, port)
    for name, service in compose()["services"].items():
        if name in ROLE_COMMANDS and "healthcheck" in service:
            text = shlex.join(str(part) for part in service["healthcheck"]["test"])
            for port, path in re.findall(r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)", text):
                yield f"compose:{name}", path, int(port)


def role_args(where: str) -> argparse.Namespace:
    command = where.split(":")[1]
    if where.startswith("k8s"):
        return parse(deployments()[command]["args"])
    return parse(compose()["services"][command]["command"])


def test_probes_ask_the_port_their_role_serves_on_every_interface() -> None:
    found = list(probes())
    assert found
    for where, _, port in found:
        args = role_args(where)
        assert http_port(args), f"{where}: `vecron {args.command}` serves no HTTP"
        assert port == http_port(args), f"{where}: probes port {port}, serves {args.port}"
        assert args.host == "0.0.0.0", f"{where}: listens on {args.host} only"


def test_every_role_that_serves_http_is_probed_on_healthz_and_readyz() -> None:
    for command, container in deployments().items():
        if http_port(parse(container["args"])):
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        else:
            assert "livenessProbe" not in container, f"{command} serves no HTTP to probe"
    for name in ROLE_COMMANDS:
        service = compose()["services"][name]
        if http_port(parse(service["command"])):
            assert "healthcheck" in service, f"compose {name} has no healthcheck"


async def test_the_probed_paths_answer_200(tmp_path: Path) -> None:
    paths = {path for _, path, _ in probes()}
    assert {"/healthz", "/readyz"} <= paths
    queue = MemoryQueue()
    async with open_stores(Settings(home=tmp_path)) as stores:
        app = create_app(stores=stores, queue=queue, metrics=Metrics())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://vecron") as client:
            for path in sorted(paths):
                response = await client.get(path)
                assert response.status_code == 200, (path, response.text)
    await queue.close()
