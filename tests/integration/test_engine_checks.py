"""Tasks 1.2/1.3 against the real engine: versions, SDK, a probe container, disk, and failing cases."""

from __future__ import annotations

import uuid

import docker
import pytest
from services_support import PREFIX, notebook_outputs, run_notebook, service_images

from helpers.core.checks import MIME as CHECKS_MIME
from helpers.core.checks import Checklist
from helpers.host import docker_engine

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def probe_image() -> str:
    return service_images()["REDIS_IMAGE"]


def leftover_probes(prefix: str = "") -> list[str]:
    """Probe containers (by the label every probe gets) whose name starts with ``prefix``: another test's
    probes (tasks 1.3 in other workers) come and go meanwhile."""
    client = docker.from_env()
    found = client.containers.list(all=True, filters={"label": docker_engine.PROBE_LABEL})
    return [c.name for c in found if c.name.startswith(prefix)]


def test_check_engine_passes_with_cli_and_sdk(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    check = Checklist("1.2")
    assert docker_engine.check_engine(check) is not None
    assert [r.name for r in check.results] == [
        "docker CLI on PATH",
        "engine answers the docker CLI",
        "engine answers the Python docker SDK",
    ]
    assert not check.failures
    assert "Engine " in check.results[1].detail


def test_check_ready_runs_a_container_and_leaves_nothing(monkeypatch, probe_image):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    prefix = f"{PREFIX}probe-{uuid.uuid4().hex[:8]}-"
    check = Checklist("1.3")
    docker_engine.check_ready(check, probe_image=probe_image, name_prefix=prefix)
    assert not check.failures, check.failures
    by_name = {r.name: r.detail for r in check.results}
    assert by_name["probe image present locally"] == probe_image
    assert docker_engine.PROBE_MARKER in by_name["a container runs"]
    assert "GB free" in by_name["at least 4 GB free for Docker's data"]
    assert by_name["docker compose v2 plugin"].startswith("Compose 2.")
    assert leftover_probes(prefix) == []


def test_the_default_probe_image_follows_redis_image(monkeypatch, probe_image):
    monkeypatch.delenv("RUNBOOK_PROBE_IMAGE", raising=False)
    monkeypatch.setenv("REDIS_IMAGE", probe_image)
    check = Checklist("1.3")
    docker_engine.check_ready(check, name_prefix=f"{PREFIX}probe-")
    assert not check.failures and probe_image in check.results[-2].detail


def test_a_missing_probe_image_is_not_pulled_and_says_docker_image_ls():
    image = f"{PREFIX}missing/none:1"
    check = Checklist("1.3")
    docker_engine.check_ready(check, probe_image=image)
    failed = {r.name: r for r in check.failures}
    assert list(failed) == ["probe image present locally"]
    assert "docker image ls" in failed["probe image present locally"].hint
    assert "RUNBOOK_PROBE_IMAGE" in failed["probe image present locally"].hint
    client = docker.from_env()
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(image)


def test_not_enough_disk_fails_with_a_next_step(probe_image):
    check = Checklist("1.3")
    docker_engine.check_ready(
        check, probe_image=probe_image, min_free_gb=10**7, name_prefix=f"{PREFIX}probe-"
    )
    assert [r.name for r in check.failures] == ["at least 1e+07 GB free for Docker's data"]
    assert "docker system df" in check.failures[0].hint


def test_facts_describe_the_engine():
    rows = dict(docker_engine.facts())
    assert rows["engine version (CLI)"][0].isdigit()
    assert rows["data root"] and rows["compose version"].startswith("2.")


@pytest.mark.slow
def test_notebooks_1_2_and_1_3_pass_and_1_3_fails_loudly_on_a_missing_image(
    tmp_path, monkeypatch, probe_image
):
    import papermill

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    for task_id, params in (("1.2", {}), ("1.3", {"probe_image": probe_image})):
        out = run_notebook(task_id, tmp_path, **params)
        checks = [c for t in notebook_outputs(out, CHECKS_MIME) for c in t["checks"]]
        assert checks and all(c["ok"] for c in checks)
    with pytest.raises(papermill.PapermillExecutionError) as err:
        run_notebook("1.3", tmp_path, ".missing", probe_image=f"{PREFIX}missing/none:1")
    assert "probe image present locally" in str(err.value) and "docker image ls" in str(err.value)
