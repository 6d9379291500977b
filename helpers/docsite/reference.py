"""The reference run: a phase executed by the runner itself, in a disposable setting, published for the site.

``make docs`` runs ``python -m helpers.docsite reference-run`` before ``mkdocs build``. It is
``runbook run phase1 --keep-going`` and nothing else: the runner's parameter injection and
validation (:mod:`helpers.runner.params`), its scheduling and blocking rules (a failed task stops
the tasks that need it), its :class:`~helpers.runner.redact.Redactor`, its run folder and ledger.
What this module adds is the setting around the run and what happens after it:

* :func:`sample_app_setting`: a disposable world for phase 1 (:class:`helpers.runner.sampleapp.Sandbox`):
  a git copy of the sample app in a temporary folder, a compose project of its own on free ports,
  the local stand-in images, a generated database password (a secret the scrubbing must catch),
  its own secrets file and runs folder (so neither the developer's ``.env`` nor ``runbook resume``
  is touched), torn down afterwards (``down -v`` of that project only, the app processes stopped);
* :func:`run`: the runner on that setting, then :func:`helpers.docsite.publish.publish` of its run
  folder (temporary paths shown as placeholders, every file checked clean by the same redactor).

Another reference run plugs in the same way. A :class:`Setting` is only data (the environment must
be in place while :func:`run` runs). Phase 2's is a rehearsal against the vendors' stand-ins (issue 12):
``helpers.docsite`` may not import ``helpers.rehearse`` (import contract), so ``make docs`` runs the
rehearsal as a learner does (``python -m helpers.rehearse phase2 --runs 1 --no-operations --keep
--workdir W``) and then :func:`publish_rehearsal` publishes the run folders it left, as the record it
wrote beside them lists them (``W/runs/rehearsal.json``: :data:`~helpers.core.paths.REHEARSAL_RECORD`), with
``kind="rehearsal"``, the record's sentence on what was stood in for the page, the workspace and app
paths as placeholders, and a redactor that also knows the rehearsal's own secrets (its secrets file).
"""

from __future__ import annotations

import contextlib
import json
import secrets as stdlib_secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.app import gitrepo
from helpers.core import secrets
from helpers.core.paths import PROJECT_ROOT, REHEARSAL_RECORD
from helpers.core.secrets import generate
from helpers.docsite.errors import DocsiteError
from helpers.docsite.publish import Publication, publish
from helpers.docsite.published import DEFAULT_REFERENCE_DIR, reference_dir
from helpers.host import docker_engine
from helpers.runner import catalog as C
from helpers.runner import params as P
from helpers.runner import runs, sampleapp
from helpers.runner.chain import Observer, Options
from helpers.runner.ledger import Ledger
from helpers.runner.plan import Selection
from helpers.runner.redact import Redactor, environment_secret_values

PLACEHOLDER_APP = "/path/to/app"
PLACEHOLDER_WORK = "/path/to/reference-run"
PLACEHOLDER_ROOT = "/path/to/runbook"
PLACEHOLDER_REHEARSAL = "/path/to/rehearsal"
SAMPLE_APP_SETTING = (
    "on a temporary copy of the sample app and with a compose project of its own on free ports "
    "(so ports and names differ from the defaults)"
)
IMAGES = ("POSTGRES_IMAGE", "REDIS_IMAGE")

WHOLE_PHASE = Selection()
Progress = Callable[[Redactor], Observer]  # makes the runner's observer with the run's redactor


@dataclass
class Setting:
    """Where a reference run executes, and how its outputs are shown.

    The environment that points the notebooks at the setting must be in place (``os.environ``,
    which the runner's kernels inherit) for as long as :func:`run` runs.
    """

    kind: str  # "reference" (real services) or "rehearsal" (stand-ins)
    description: str  # where it ran, for the page banner
    work: Path  # a disposable folder; the runner's run folders go under work/runs/
    given: P.ParameterSet = field(default_factory=P.ParameterSet)  # as `runbook run -p` gives them
    placeholders: dict[str, str] = field(default_factory=dict)  # a path of this machine → shown as
    about: dict[str, Any] = field(default_factory=dict)  # engine, compose, images, commit...


def engine_problem() -> str | None:
    """Why no reference run can be made here (no docker CLI, no engine), or None."""
    versions = docker_engine.cli_versions()
    if versions.server is None:
        return f"no Docker engine answers ({versions.error or 'docker version shows no server'})"
    return None


def machine_versions() -> dict[str, str]:
    """Engine and Compose versions, and the runbook's commit (``+changes`` when the tree is dirty)."""
    commit = gitrepo.git(PROJECT_ROOT, "rev-parse", "--short", "HEAD", check=False).stdout.strip()
    dirty = gitrepo.git(PROJECT_ROOT, "status", "--porcelain", "--untracked-files=no", check=False)
    return {
        "engine": docker_engine.cli_versions().server or "",
        "compose": docker_engine.compose_version()[0],
        "commit": commit + ("+changes" if dirty.stdout.strip() else ""),
    }


def _service_images(env: Mapping[str, str]) -> dict[str, str]:
    missing = [var for var in IMAGES if not env.get(var) or not sampleapp.image_present(env[var])]
    if missing:
        tried = ", ".join(f"{v}={env.get(v) or sampleapp.OFFICIAL_IMAGES[v]}" for v in missing)
        raise DocsiteError(
            f"the service images are not present locally ({tried}) and no registry is reachable; build "
            "the stand-ins with `bash scripts/standins/build.sh` (or `scripts/provision.sh images`), or "
            "set POSTGRES_IMAGE and REDIS_IMAGE to images you have"
        )
    return {var: env[var] for var in IMAGES}


@contextlib.contextmanager
def sample_app_setting(echo: Callable[[str], Any] = print) -> Iterator[Setting]:
    """Phase 1's disposable world (see the module docstring); torn down on exit, also after Ctrl-C."""
    sandbox = sampleapp.Sandbox.create(f"rb-docs-ref-{stdlib_secrets.token_hex(3)}")
    try:
        images = _service_images(sandbox.env)
        sandbox.env.update(
            POSTGRES_PASSWORD=generate(18),
            RUNBOOK_SECRETS_FILE=str(sandbox.work / "secrets.env"),
            RUNBOOK_RUNS_DIR=str(sandbox.work / "runs"),
        )
        sandbox.apply()
        sampleapp.write_local_env(sandbox.app_dir)  # the app's .env again, now with this run's password
        yield Setting(
            kind="reference",
            description=SAMPLE_APP_SETTING,
            work=sandbox.work,
            given=P.ParameterSet(
                shared={
                    "app_dir": str(sandbox.app_dir),
                    "dry_run": False,
                    "commit": True,  # 1.14 commits, in the run's own copy of the app only
                    "rewrite_env": True,  # 1.9 may fix the VM addresses in that copy's own .env
                }
            ),
            placeholders={
                str(sandbox.app_dir): PLACEHOLDER_APP,
                str(sandbox.work): PLACEHOLDER_WORK,
                str(PROJECT_ROOT): PLACEHOLDER_ROOT,
            },
            about={**machine_versions(), "images": images},
        )
    finally:
        problems = sandbox.teardown()
        for problem in problems:
            echo(f"cleaning up the reference run: {problem}")
        if not problems:
            echo(f"removed the reference run's compose project {sandbox.project} and its folder")


def run_name(setting: Setting, phase: str, selection: Selection = WHOLE_PHASE) -> str:
    """``reference-phase1``; a partial run says which part: ``reference-phase1-only-1.4-1.5``."""
    if selection.only:
        return f"{setting.kind}-{phase}-only-{'-'.join(selection.only)}"
    if selection.start or selection.stop:
        return f"{setting.kind}-{phase}-{selection.start or 'start'}-to-{selection.stop or 'end'}"
    return f"{setting.kind}-{phase}"


def run(
    setting: Setting,
    out_dir: Path,
    phase: str = "phase1",
    selection: Selection = WHOLE_PHASE,
    timeout: float | None = None,
    progress: Progress | None = None,
    redactor: Redactor | None = None,
    name: str = "",
    replaces_phase: bool | None = None,
) -> tuple[Ledger, dict[str, Any]]:
    """``runbook run PHASE --keep-going`` (with ``selection``) in ``setting``, then publish its run folder.

    Returns the runner's ledger and the published run's manifest entry. ``redactor`` must be made
    once the setting's environment is in place (its secrets are then known); by default it is, and
    ``progress`` gets it to make the runner's observer (``helpers.runner.progress.observer_for``).
    ``name`` (default :func:`run_name`) names the published run. It replaces the earlier published
    runs of its phase and kind when ``replaces_phase`` (default: when it ran the whole phase; the
    first of several runs that make up a phase passes True), else it is shown over them.
    """
    redactor = redactor or Redactor()
    observer = progress(redactor) if progress else None
    name = name or run_name(setting, phase, selection)
    request = runs.Request(
        phase=phase,
        selection=selection,
        given=setting.given,
        output_dir=setting.work / "runs" / name / phase,
        options=Options(keep_going=True, timeout=timeout),
        argv=["python", "-m", "helpers.docsite", "reference-run"]
        + ([] if selection == WHOLE_PHASE else selection.describe().split()),
    )
    try:
        ledger = runs.start(C.default(), request, observer, redactor)
    except runs.RunnerError as exc:
        raise DocsiteError(f"the runner refused the reference run: {exc}") from None
    how = Publication(
        name=name,
        kind=setting.kind,
        setting=setting.description,
        placeholders=setting.placeholders,
        about=setting.about,
        replaces_phase=selection == WHOLE_PHASE if replaces_phase is None else replaces_phase,
    )
    return ledger, publish(ledger.run_dir, out_dir, how, redactor)


def reference_run(
    out_dir: Path | None = None,
    only: Sequence[str] = (),
    timeout: float | None = 600,
    progress: Progress | None = None,
    echo: Callable[[str], Any] = print,
) -> tuple[Ledger, dict[str, Any]]:
    """Phase 1 for real in :func:`sample_app_setting`, published into the reference folder."""
    problem = engine_problem()
    if problem:
        raise DocsiteError(
            f"cannot make a reference run: {problem}. Without one, the docs render the notebooks "
            "without outputs (and say so); start the engine and run this again"
        )
    target = out_dir or reference_dir() or DEFAULT_REFERENCE_DIR
    with sample_app_setting(echo) as setting:
        return run(setting, target, "phase1", Selection(only=tuple(only)), timeout, progress)


def publish_rehearsal(workdir: Path, out_dir: Path | None = None) -> list[dict[str, Any]]:
    """Publish the run folders a phase-2 rehearsal left in ``workdir`` (see the module docstring).

    The first folder replaces the earlier rehearsal runs of its phase; the next ones (2.18, after the
    simulated push) are shown over it. Returns their manifest entries. Nothing is published when a folder
    still holds a secret of the rehearsal or a path of its workspace
    (:func:`~helpers.docsite.publish.publish` refuses it).
    """
    workdir = Path(workdir)
    path = workdir / "runs" / REHEARSAL_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        folders = [workdir / "runs" / str(name) for name in record["runs"]]
        paths, setting = record["paths"], str(record["setting"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DocsiteError(
            f"{path} is missing or unreadable ({exc}): run `python -m helpers.rehearse phase2 --runs 1 "
            f"--keep --workdir {workdir}` first"
        ) from None
    if not folders:
        raise DocsiteError(f"{path} lists no run folder: the rehearsal did not run")
    values = set(secrets.known_values()) | environment_secret_values()
    secrets_file = Path(str(record.get("secrets_file") or ""))
    if secrets_file.is_file():
        from dotenv import dotenv_values

        values |= {v for v in dotenv_values(secrets_file).values() if v}
    redactor = Redactor(values)
    placeholders = {
        str(paths["app"]): PLACEHOLDER_APP,
        str(paths["workspace"]): PLACEHOLDER_REHEARSAL,
        str(PROJECT_ROOT): PLACEHOLDER_ROOT,
    }
    target = out_dir or reference_dir() or DEFAULT_REFERENCE_DIR
    about = machine_versions()
    entries = []
    for number, folder in enumerate(folders):
        suffix = folder.name.split("-", 2)[2] if folder.name.count("-") >= 2 else ""
        how = Publication(
            name="rehearsal-phase2" + (f"-{suffix}" if suffix else ""),
            kind="rehearsal",
            setting=setting,
            placeholders=placeholders,
            about=about,
            replaces_phase=number == 0,
        )
        entries.append(publish(folder, target, how, redactor))
    return entries
