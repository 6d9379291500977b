"""The deploy workflow's build job, run on this machine as a GitHub runner would run it (rehearsal).

What the job builds is read from the workflow file itself (:func:`helpers.app.workflow.build_plan`: the
matrix, the image names and tag rules of docker/metadata-action, the context, Dockerfile, build
arguments, tags and ``push`` of docker/build-push-action); nothing is restated here. For each image:

1. *check out* the pushed commit: ``git archive <sha>`` of the app repository into a fresh folder (the
   committed files only, as actions/checkout gives them);
2. *build* with ``docker build`` (:func:`helpers.runner.sampleapp.docker_build`: the legacy builder, the
   host's network), with the workflow's build arguments plus the rehearsal's own (``NODE_IMAGE``: the
   Node.js base image this machine has, the argument the Dockerfiles declare for machines that cannot
   pull ``node:20-alpine``);
3. *push* every tag to the registry the workflow names (the rehearsal's local registry) and keep the
   digest ``docker push`` reports;
4. remove the runner's tags (``docker rmi --no-prune``: the layers stay as the build cache of the next run,
   as the workflow's ``type=gha`` cache keeps them), so that what runs in production is what Coolify pulls.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from helpers.app import workflow
from helpers.runner import sampleapp

PUSHED = re.compile(r"digest: (sha256:[0-9a-f]{64})")


class BuildFailed(RuntimeError):
    """A step of the build job failed; the message has the step and its output's last lines."""


@dataclass(frozen=True)
class Pushed:
    app: str
    reference: str  # <registry>/<owner>/<repo>-<app>:<tag>
    digest: str  # sha256:... of the manifest, as the registry stores it
    image_id: str
    size: int  # bytes, as `docker image inspect` reports it
    seconds: float  # the build's time (the first tag's line only)

    def line(self) -> str:
        return (
            f"{self.app}: pushed {self.reference} {self.digest} ({self.size / 1e6:.0f} MB, "
            f"built in {self.seconds:.0f} s)"
        )


def _run(command: list[str], what: str, timeout: float = 900) -> str:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise BuildFailed(f"{what}: `{' '.join(command)}` exited {proc.returncode}:\n{tail}")
    return proc.stdout


def checkout(repo_dir: Path, sha: str, dest: Path) -> Path:
    """The committed tree of ``sha`` in ``dest`` (``git archive``), with the modes a ``git clone`` gives
    (``actions/checkout`` clones): 644 and 755. ``git archive`` alone writes 664, and root's ``tar`` keeps
    it; the classic builder's cache compares modes, so such a checkout shared no layer with other builds."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest.with_suffix(".tar")
    git = ["git", "-C", str(repo_dir), "-c", "tar.umask=0022", "archive", "--format=tar"]
    _run([*git, "-o", str(archive), sha], "checkout")
    _run(["tar", "-xf", str(archive), "-C", str(dest)], "checkout")
    archive.unlink()
    return dest


def run_build_job(
    repo_dir: str | Path,
    workflow_text: str,
    repository: str,
    sha: str,
    branch: str,
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> list[Pushed]:
    """Build and push every image the workflow's build job builds for ``sha`` on ``branch``."""
    plans = workflow.build_plan(workflow_text, repository, sha, branch)
    pushed: list[Pushed] = []
    work = Path(tempfile.mkdtemp(prefix="rb-build-"))
    try:
        source = checkout(Path(repo_dir), sha, work / "src")
        log(f"checkout: {sha[:12]} of {repository} ({branch})")
        for plan in plans:
            args = {**plan.build_args, **dict(build_args or {})}
            shown = " ".join(f"--build-arg {k}={v}" for k, v in args.items())
            log(
                f"build {plan.app}: docker build -f {plan.dockerfile} {shown} {plan.context}".replace(
                    "  ", " "
                )
            )
            try:
                built = sampleapp.docker_build(
                    source / plan.context, str(source / plan.dockerfile), plan.tags, args, labels
                )
            except sampleapp.SampleAppError as exc:
                raise BuildFailed(f"build {plan.app}: {exc}") from None
            if built.waited >= 1:
                log(f"build {plan.app}: waited {built.waited:.0f} s for its turn (another image build here)")
            seconds = built.seconds
            info = sampleapp.inspect_image(plan.tags[0])
            for tag in plan.tags if plan.push else ():
                out = _run(["docker", "push", tag], f"push {plan.app}")
                found = PUSHED.search(out)
                if not found:
                    raise BuildFailed(
                        f"push {plan.app}: `docker push {tag}` reported no digest:\n{out[-500:]}"
                    )
                entry = Pushed(plan.app, tag, found.group(1), info["Id"], int(info["Size"]), seconds)
                pushed.append(entry)
                log(entry.line())
            # the runner goes away: its tags with it (the layers stay, as the next build's cache)
            subprocess.run(["docker", "rmi", "--no-prune", *plan.tags], capture_output=True, timeout=120)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return pushed
