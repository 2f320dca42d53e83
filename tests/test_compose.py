"""docker-compose.yml, the Dockerfile and prefect.yaml: the multi-machine shape, checked.

No Docker here: the files are read as data. The compose file must hold the services
the issue names with pinned images, healthchecks and telemetry off; its commands must
be the ones the end-to-end test runs and the docs show; Prefect must understand every
setting it passes; and prefect.yaml must declare the deployments `newswatch serve`
registers (names, flows, schedules, concurrency) for the example config.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.test_e2e_prefect import prefect_server_command

ROOT = Path(__file__).resolve().parent.parent
WORKER_COMMAND = ["prefect", "worker", "start", "--pool", "newswatch"]
PREFECT_SERVICES = ("prefect-server", "deploy", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


@pytest.fixture(scope="module")
def prefect_yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_compose_has_postgres_prefect_server_worker_and_a_mail_catcher(
    services: dict[str, Any],
) -> None:
    assert {"postgres", "prefect-server", "worker", "mailcatcher"} <= set(services)
    smtp_ports = {str(p).rsplit(":", 1)[-1] for p in services["mailcatcher"]["ports"]}
    assert "1025" in smtp_ports


def test_every_pulled_image_is_pinned_to_an_exact_version(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if "build" in service:
            continue  # built from this project's Dockerfile
        image = service["image"]
        assert ":" in image and "@" not in image, f"{name}: {image} has no tag"
        tag = image.rsplit(":", 1)[1]
        # a full release (PostgreSQL's are major.minor), never a moving major or `latest`
        assert re.match(r"v?\d+(\.\d+)+(-|$)", tag), f"{name}: {image}"


def test_the_dockerfile_pins_its_base_image_and_uv() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base)
    assert re.search(r"uv==\d+\.\d+\.\d+", dockerfile)
    assert "uv sync --frozen" in dockerfile


def test_every_long_running_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        if service.get("restart") == "no":
            continue  # a one-shot job
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_services_wait_for_the_health_of_what_they_need(services: dict[str, Any]) -> None:
    server_needs = services["prefect-server"]["depends_on"]
    worker_needs = services["worker"]["depends_on"]
    assert server_needs["postgres"]["condition"] == "service_healthy"
    assert worker_needs["prefect-server"]["condition"] == "service_healthy"
    assert worker_needs["deploy"]["condition"] == "service_completed_successfully"


def test_telemetry_is_off_for_every_prefect_process(services: dict[str, Any]) -> None:
    for name in PREFECT_SERVICES:
        env = _env(services[name])
        assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false", name
        assert env["DO_NOT_TRACK"] == "1", name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "PREFECT_SERVER_ANALYTICS_ENABLED=false" in dockerfile
    assert "DO_NOT_TRACK=1" in dockerfile


def test_prefect_server_runs_the_command_the_end_to_end_test_runs(
    services: dict[str, Any],
) -> None:
    assert services["prefect-server"]["command"] == prefect_server_command("0.0.0.0", 4200)


def test_prefect_server_keeps_its_runs_in_the_composed_postgresql(
    services: dict[str, Any],
) -> None:
    url = urlsplit(_env(services["prefect-server"])["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert (url.scheme, url.hostname) == ("postgresql+asyncpg", "postgres")
    init = (ROOT / "docker" / "postgres-init.sql").read_text()
    assert re.search(rf"CREATE DATABASE {url.path.lstrip('/')}\b", init)


def test_prefect_understands_every_setting_compose_passes(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import Settings
    from prefect.settings.legacy import _get_valid_setting_names

    known = _get_valid_setting_names(Settings)
    env = _env(services["prefect-server"])
    unknown = {k for name in PREFECT_SERVICES for k in _env(services[name])} - known
    assert {k for k in unknown if k.startswith("PREFECT_")} == set()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings().server
    assert settings.analytics_enabled is False
    assert {"flow_runs", "events"} <= settings.services.db_vacuum.enabled_vacuum_types
    assert settings.services.db_vacuum.retention_period == timedelta(days=30)


def test_worker_runs_the_documented_worker_command(
    services: dict[str, Any], prefect_yaml: dict[str, Any]
) -> None:
    command = services["worker"]["command"]
    assert command[: len(WORKER_COMMAND)] == WORKER_COMMAND
    documented = " ".join(WORKER_COMMAND)
    assert documented in (ROOT / "prefect.yaml").read_text()
    assert documented in (ROOT / "docker-compose.yml").read_text()
    pools = {d["work_pool"]["name"] for d in prefect_yaml["deployments"]}
    assert pools == {"newswatch"}


def test_deploy_job_creates_the_process_pool_and_deploys_prefect_yaml(
    services: dict[str, Any],
) -> None:
    script = " ".join(services["deploy"]["command"])
    assert "prefect work-pool create newswatch --type process" in script
    assert "deploy --all" in script


def _yaml_schedule(entry: dict[str, Any]) -> tuple[Any, ...]:
    if "cron" in entry:
        return ("cron", entry["cron"], entry["timezone"])
    anchor = datetime.fromisoformat(entry["anchor_date"]).astimezone(UTC)
    return ("interval", timedelta(seconds=entry["interval"]), anchor)


def _built_schedule(schedule: Any) -> tuple[Any, ...]:
    if hasattr(schedule, "cron"):
        return ("cron", schedule.cron, schedule.timezone)
    return ("interval", schedule.interval, schedule.anchor_date.astimezone(UTC))


def test_prefect_yaml_declares_what_serve_registers_for_the_example_config(
    prefect_yaml: dict[str, Any],
) -> None:
    from flows.deployments import build_deployments
    from newswatch.config import load_config

    built = {d.name: d for d in build_deployments(load_config(ROOT / "newswatch.toml"))}
    declared = {d["name"]: d for d in prefect_yaml["deployments"]}
    assert set(declared) == set(built)
    for name, deployment in built.items():
        entry = declared[name]
        assert [_yaml_schedule(s) for s in entry["schedules"]] == [
            _built_schedule(s.schedule) for s in deployment.schedules
        ], name
        limit = entry["concurrency_limit"]
        assert deployment.concurrency_options is not None
        assert (limit["limit"], limit["collision_strategy"]) == (
            deployment.concurrency_limit,
            deployment.concurrency_options.collision_strategy.value,
        ), name
        assert set(entry["parameters"]) == set(deployment.parameters), name


def test_prefect_yaml_entrypoints_load_the_flows_serve_runs(
    prefect_yaml: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flows import load_flow_from_entrypoint

    # loading a file entrypoint puts its directory on sys.path; keep that out of later tests
    monkeypatch.setattr(sys, "path", list(sys.path))

    from flows.deployments import POLL_DEPLOYMENT
    from flows.digest_flow import digest_flow
    from flows.poll_flow import poll_flow

    for entry in prefect_yaml["deployments"]:
        path, _, _ = entry["entrypoint"].partition(":")
        assert (ROOT / path).is_file()
        loaded = load_flow_from_entrypoint(str(ROOT / entry["entrypoint"]))
        expected = poll_flow if entry["name"] == POLL_DEPLOYMENT else digest_flow
        assert loaded.name == expected.name
        assert set(entry["parameters"]) <= set(expected.parameters.properties)


def test_prefect_yaml_entrypoints_load_in_a_fresh_worker_process(
    prefect_yaml: dict[str, Any],
) -> None:
    """A worker loads a file entrypoint with its directory first on sys.path: no flow
    module may shadow a package it imports (flows/digest.py once hid `digest`)."""
    import subprocess

    for entry in prefect_yaml["deployments"]:
        code = (
            "from prefect.flows import load_flow_from_entrypoint; "
            f"print(load_flow_from_entrypoint({entry['entrypoint']!r}).name)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().startswith("newswatch-")
