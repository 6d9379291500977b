"""The sample app delivered as the rehearsal delivers it, for the tests of the Coolify stand-in's runtime.

:func:`delivered` makes a git copy of the sample app with the files of tasks 2.9 (the deploy workflow,
rendered for a local registry) and 2.12 (Dockerfiles, .dockerignore, standalone output) committed, starts a
local registry (Debian's docker-registry, :class:`helpers.rehearse.registry.LocalRegistry`) and runs the
workflow's build job on that commit (:func:`helpers.rehearse.builder.run_build_job`): both images built and
pushed, tagged ``sha-<commit>`` and ``main``, the runner's local tags removed. What runs afterwards has to be
pulled from the registry. The build lines are printed (CI's log shows them).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from testsupport import unavailable

REPOSITORY = "acme/demo-app"
LABEL = "runbook.test.delivery"


@dataclass(frozen=True)
class Delivered:
    registry: str  # 127.0.0.1:<port>
    images: dict[str, str]  # app -> <registry>/acme/demo-app-<app> (no tag)
    digests: dict[str, str]  # app -> the digest pushed as main
    sha: str
    app_dir: Path


def _git(app: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(app), *args], capture_output=True, text=True, check=True).stdout


@contextmanager
def delivered(folder: Path, capsys: pytest.CaptureFixture[str] | None = None) -> Iterator[Delivered]:
    from helpers.app import appfiles, appprod, workflow
    from helpers.rehearse import builder
    from helpers.rehearse.registry import LocalRegistry
    from helpers.runner import sampleapp

    if shutil.which("docker-registry") is None:
        unavailable("docker-registry is not installed: scripts/provision.sh registry")
    try:
        base = sampleapp.node_image()
    except sampleapp.SampleAppError as exc:
        unavailable(str(exc))
    with LocalRegistry(folder / "registry") as registry:
        app, _ = sampleapp.prepare(folder / "app")
        with pytest.MonkeyPatch.context() as patch:  # the workflow names the local registry
            patch.setenv("RUNBOOK_IMAGE_REGISTRY", registry.host)
            changes, _ = workflow.plan(app, workflow.WorkflowSpec())
            appfiles.apply(app, changes)
            changes, _ = appprod.plan_images(app)
            appfiles.apply(app, changes)
            names = workflow.image_names(REPOSITORY)
        _git(app, "add", "-A")
        _git(app, "commit", "-q", "-m", "Deploy to production")
        sha = _git(app, "rev-parse", "HEAD").strip()
        text = (app / workflow.WORKFLOW).read_text(encoding="utf-8")
        lines: list[str] = []
        pushed = builder.run_build_job(
            app, text, REPOSITORY, sha, "main", {"NODE_IMAGE": base}, {LABEL: "1"}, log=lines.append
        )
        print("\nthe deploy workflow's build job, run here:\n  " + "\n  ".join(lines), flush=True)
        digests = {p.app: p.digest for p in pushed if p.reference.endswith(":main")}
        try:
            yield Delivered(registry.host, names, digests, sha, app)
        finally:
            ids = subprocess.run(
                ["docker", "images", "-q", "--no-trunc", "--filter", f"reference={registry.host}/*/*"],
                capture_output=True,
                text=True,
            ).stdout.split()
            for image in dict.fromkeys(ids):
                subprocess.run(["docker", "rmi", "-f", "--no-prune", image], capture_output=True)
