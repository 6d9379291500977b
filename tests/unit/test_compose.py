"""helpers.services.compose without an engine: finding the file, reading compose's own config, ps output,
diagnoses.

``docker compose config`` needs the CLI and its plugin but no engine, so the project model
is read from the real top-level docker-compose.yml, resolved by compose itself.
"""

from __future__ import annotations

import json
import shutil

import pytest
from testsupport import ROOT, needs

from helpers.core.checks import Checklist
from helpers.services import compose

COMPOSE_FILE = ROOT / "docker-compose.yml"
needs_compose = needs(
    shutil.which("docker") is not None and COMPOSE_FILE.is_file(), "docker CLI or docker-compose.yml missing"
)


def test_empty_app_dir_says_which_parameter(tmp_path):
    with pytest.raises(compose.ComposeError) as err:
        compose.find_compose_file("")
    assert "app_dir" in err.value.problem and "RUNBOOK_APP_DIR" in err.value.next_step


def test_missing_app_dir(tmp_path):
    with pytest.raises(compose.ComposeError, match="does not exist"):
        compose.find_compose_file(tmp_path / "nope")


def test_missing_compose_file_says_run_task_1_7(tmp_path):
    with pytest.raises(compose.ComposeError) as err:
        compose.find_compose_file(tmp_path)
    assert "no docker-compose.yml" in err.value.problem and "task 1.7" in err.value.next_step
    check = Checklist("pre-flight")
    assert compose.check_preflight(check, tmp_path) is None
    assert check.failures[0].name == "compose file present and valid" and "task 1.7" in check.failures[0].hint


def test_compose_yaml_names_are_found(tmp_path):
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    assert compose.find_compose_file(tmp_path).name == "compose.yaml"


@needs_compose
def test_load_resolves_environment_and_maps_variables(tmp_path, monkeypatch):
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "rb-engine-unit")
    monkeypatch.setenv("POSTGRES_PORT", "25432")
    monkeypatch.setenv("REDIS_IMAGE", "example/redis:7")
    monkeypatch.delenv("REDIS_PORT", raising=False)
    monkeypatch.delenv("POSTGRES_IMAGE", raising=False)
    project = compose.load(tmp_path)
    assert project.name == "rb-engine-unit"
    pg, rd = project.services["postgres"], project.services["redis"]
    assert pg.image == "postgres:15-alpine" and pg.image_variable == "POSTGRES_IMAGE"
    assert rd.image == "example/redis:7" and rd.image_variable == "REDIS_IMAGE"
    assert pg.ports == (compose.PortSpec("127.0.0.1", 25432, 5432, "POSTGRES_PORT"),)
    assert rd.ports == (compose.PortSpec("127.0.0.1", 6379, 6379, "REDIS_PORT"),)
    assert pg.healthcheck and rd.healthcheck
    assert (pg.url_key, rd.url_key) == ("DATABASE_URL", "REDIS_URL")
    args = project.args("ps")
    assert args[-3:] == ["-p", "rb-engine-unit", "ps"] and str(tmp_path / "docker-compose.yml") in args


def test_the_cache_keys_on_the_variables_the_files_name_and_compose_s_own():
    environ = {
        "POSTGRES_PORT": "1",
        "RUNBOOK_TASK_ID": "1.4",
        "COMPOSE_PROFILES": "x",
        "DOCKER_HOST": "h",
        "Y": "2",
    }
    assert compose.environment_key("ports: ['${POSTGRES_PORT:-5432}:5432']", environ) == {
        ("POSTGRES_PORT", "1"),
        ("COMPOSE_PROFILES", "x"),
        ("DOCKER_HOST", "h"),
    }
    assert ("Y", "2") in compose.environment_key("image: $Y", environ)  # the short form too
    for nested in ("include:\n  - other.yml", "services:\n  web:\n    extends:\n      file: base.yml"):
        assert compose.environment_key(nested, environ) == frozenset(environ.items())


@needs_compose
def test_load_asks_compose_again_only_when_a_variable_that_matters_changes(tmp_path, monkeypatch):
    """The runner sets RUNBOOK_TASK_ID for every notebook: that must not cost another `compose config`;
    a variable the file names, directly or through its folder's .env, must."""
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("REDIS_PORT=${RB_UNIT_REDIS_PORT:-6379}\n")
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "rb-engine-unit-cache")
    asked = []
    real = compose._config
    monkeypatch.setattr(compose, "_config", lambda *a: asked.append(a) or real(*a))
    compose._resolved.cache_clear()
    first = compose.load(tmp_path)
    monkeypatch.setenv("RUNBOOK_TASK_ID", "1.14")
    assert compose.load(tmp_path) is first and len(asked) == 2  # one project: config, then --no-interpolate
    monkeypatch.setenv("RB_UNIT_REDIS_PORT", "26379")
    assert compose.load(tmp_path).services["redis"].ports[0].published == 26379 and len(asked) == 4


@needs_compose
def test_an_invalid_file_is_reported_with_compose_own_error(tmp_path):
    (tmp_path / "docker-compose.yml").write_text("services:\n  db:\n    image: [not, a, string]\n")
    with pytest.raises(compose.ComposeError) as err:
        compose.load(tmp_path)
    assert "rejects" in err.value.problem and "1.7" in err.value.next_step


def test_parse_config_without_ports_or_healthcheck(tmp_path):
    resolved = {"name": "p", "services": {"web": {"image": "nginx"}}}
    project = compose.parse_config(
        resolved, {"services": {"web": {"image": "nginx"}}}, tmp_path, tmp_path / "f"
    )
    assert project.services["web"] == compose.ServiceSpec("web", "nginx")


PS_ROW = {
    "Name": "p-postgres-1",
    "Service": "postgres",
    "State": "running",
    "Health": "healthy",
    "Publishers": [
        {"URL": "127.0.0.1", "TargetPort": 5432, "PublishedPort": 5432, "Protocol": "tcp"},
        {"URL": "", "TargetPort": 8080, "PublishedPort": 0, "Protocol": "tcp"},
    ],
}


def test_parse_ps_reads_lines_and_arrays():
    line = json.dumps(PS_ROW)
    assert compose.parse_ps(line + "\n" + line) == [PS_ROW, PS_ROW]
    assert compose.parse_ps(json.dumps([PS_ROW])) == [PS_ROW]
    assert compose.parse_ps("  \n") == []


@pytest.mark.parametrize(
    ("state", "health", "ready"),
    [
        ("running", "healthy", True),
        ("running", "", True),
        ("running", "starting", False),
        ("running", "unhealthy", False),
        ("exited", "", False),
        ("created", "", False),
    ],
)
def test_ready_means_running_and_healthy_when_checked(state, health, ready):
    assert compose.ServiceState("s", "c", state, health).ready is ready


def _project(tmp_path):
    pg = compose.ServiceSpec(
        "postgres",
        "rb-engine-absent/postgres:15",
        "POSTGRES_IMAGE",
        (compose.PortSpec("127.0.0.1", 15432, 5432, "POSTGRES_PORT"),),
        True,
    )
    rd = compose.ServiceSpec("redis", "rb-engine-absent/redis:7", "REDIS_IMAGE", (), True)
    return compose.Project(tmp_path, tmp_path / "docker-compose.yml", "demo", {"postgres": pg, "redis": rd})


def test_diagnose_port_conflict_names_the_variable(tmp_path):
    out = (
        "Error response from daemon: driver failed programming external connectivity on endpoint "
        "demo-postgres-1: Bind for 127.0.0.1:15432 failed: port is already allocated"
    )
    message = compose.diagnose_up_failure(_project(tmp_path), out)
    assert "port 15432 is taken" in message and "POSTGRES_PORT" in message and "DATABASE_URL" in message


def test_diagnose_pull_failure_names_the_image_variables(tmp_path):
    out = "Error response from daemon: pull access denied for postgres, repository does not exist"
    message = compose.diagnose_up_failure(_project(tmp_path), out)
    assert "POSTGRES_IMAGE / REDIS_IMAGE" in message and "docker image ls" in message
    assert "rb-engine-absent/postgres:15 (POSTGRES_IMAGE)" in message


def test_diagnose_unhealthy_points_at_the_logs(tmp_path):
    message = compose.diagnose_up_failure(_project(tmp_path), "container demo-postgres-1 is unhealthy")
    assert "demo-postgres-1 did not become healthy" in message and "docker compose -p demo logs" in message


def test_diagnose_scrubs_passwords(tmp_path):
    message = compose.diagnose_up_failure(_project(tmp_path), "bad url postgres://u:s3cr3tpass@db/app")
    assert "s3cr3tpass" not in message


def test_up_with_missing_app_dir_is_a_failed_step_not_a_traceback(tmp_path):
    results = compose.up(tmp_path / "missing")
    assert [r.status for r in results] == ["failed"] and "does not exist" in results[0].detail


def test_check_services_without_compose_file_fails_with_hint(tmp_path):
    check = Checklist("services")
    compose.check_services(check, tmp_path)
    assert check.failures and "task 1.7" in check.failures[0].hint


def test_drift_compares_image_and_published_ports(tmp_path):
    pg = _project(tmp_path).services["postgres"]
    same = compose.ServiceState(
        "postgres", "c", "running", "healthy", (("127.0.0.1", 15432, 5432),), pg.image
    )
    assert compose.drift(pg, same) == ""
    moved = compose.ServiceState(
        "postgres", "c", "running", "healthy", (("127.0.0.1", 5432, 5432),), pg.image
    )
    assert "does not publish 127.0.0.1:15432->5432" in compose.drift(pg, moved)
    other = compose.ServiceState("postgres", "c", "running", "healthy", same.publishers, "postgres:14")
    assert "runs image postgres:14" in compose.drift(pg, other)


def _probe(start: str, end: str, code: int) -> dict:
    return {"Start": start, "End": end, "ExitCode": code, "Output": ""}


def test_health_delay_is_the_first_passing_probe_after_the_start():
    state = {
        "StartedAt": "2026-12-02T11:59:44.743673915Z",
        "Health": {
            "Log": [
                _probe("2026-12-02T11:59:45.2Z", "2026-12-02T11:59:45.3Z", 2),
                _probe("2026-12-02T11:59:45.8Z", "2026-12-02T11:59:46.043673Z", 0),
                _probe("2026-12-02T11:59:46.5Z", "2026-12-02T11:59:46.6Z", 0),
            ]
        },
    }
    seconds, exact = compose.health_delay(state)
    assert exact and round(seconds, 3) == 1.3


def test_health_delay_is_an_upper_bound_when_the_log_dropped_earlier_probes():
    log = [_probe(f"2026-12-02T12:00:0{n}Z", f"2026-12-02T12:00:0{n}.5Z", 0) for n in range(5)]
    seconds, exact = compose.health_delay({"StartedAt": "2026-12-02T11:59:58Z", "Health": {"Log": log}})
    assert (seconds, exact) == (2.5, False)
    seconds, exact = compose.health_delay({"StartedAt": "2026-12-02T11:59:58Z", "Health": {"Log": log[:2]}})
    assert (seconds, exact) == (2.5, True)


@pytest.mark.parametrize(
    "state",
    [
        {"StartedAt": "2026-12-02T11:59:44Z", "Health": {"Log": [_probe("x", "y", 1)]}},
        {"StartedAt": "2026-12-02T11:59:44Z"},
        {"StartedAt": "0001-01-01T00:00:00Z", "Health": {"Log": [_probe("x", "2026-12-02T11:59:45Z", 0)]}},
    ],
)
def test_health_delay_is_none_without_a_passing_probe_or_a_start(state):
    assert compose.health_delay(state) is None
