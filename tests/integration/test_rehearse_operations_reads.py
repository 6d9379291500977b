"""The operations rehearsal reads the apps' images on the engine while Coolify's stand-in redeploys them.

The stand-in replaces an app's container without overlap, so for a moment there is no container by the app's
name. A CI run's release crashed there: the Docker CLI prints an empty line for an image it cannot inspect,
and the rehearsal parsed it as JSON. Those reads now answer "nothing runs yet", and the wait goes on."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from helpers.core.settings import env
from helpers.rehearse.operations import repo_digests, running_image

pytestmark = pytest.mark.engine


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=120).stdout


def test_a_container_being_replaced_runs_no_image_and_has_no_digest() -> None:
    image = env.redis_image  # present on every machine the engine tests run on (provisioning)
    name = f"rb-ops-reads-{uuid.uuid4().hex[:8]}"
    _docker("create", "--name", name, image)
    try:
        running = running_image(name)
        assert running == _docker("image", "inspect", "--format", "{{.Id}}", image).strip()
        assert running.startswith("sha256:")
        listed = _docker("image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", image)
        assert repo_digests(running) == listed.split()  # a local build has none; a pulled image has its own
    finally:
        _docker("rm", "-f", name)
    assert running_image(name) == ""  # between the old container's removal and the new one's creation
    assert repo_digests("") == []
    assert repo_digests("sha256:" + "0" * 64) == []  # an image the engine no longer has
