"""Notebooks 1.6 to 1.13 executed with papermill against a git copy of the sample app.

* a dry run of all eight changes no file (hash of the whole tree, ignored files included);
* the first real run changes the repository and every verification passes;
* the second run reports only ``ok``/``skipped`` steps (read from the notebooks' step outputs) and
  leaves every file byte-identical;
* bad input (no app_dir, malformed package.json) stops the notebook with a message saying what to do;
* the eight notebooks give the same repository in any order (the runner may order them differently),
  and a second run in that order changes nothing: the notebooks themselves, in one warm kernel.

Marked ``engine``: task 1.7's verification runs ``docker compose config`` (the Docker CLI and its
Compose plugin, provisioned together with the engine).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import nbformat
import papermill
import pytest

from helpers.app import references
from helpers.core.paths import PROJECT_ROOT
from helpers.core.steps import MIME as STEPS_MIME
from helpers.core.tasks import get, order
from helpers.runner.engine import KernelSession

pytestmark = [pytest.mark.engine, pytest.mark.slow]

TASKS = [
    t.id for t in order("phase1") if t.id in {"1.6", "1.7", "1.8", "1.9", "1.10", "1.11", "1.12", "1.13"}
]


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path):
    """No developer settings leak into the kernels: defaults for the local services, no secrets file."""
    for name in (
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "POSTGRES_DB",
        "POSTGRES_PORT",
        "REDIS_PORT",
        "RUNBOOK_DRY_RUN",
        "RUNBOOK_APP_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(tmp_path / "no-secrets.env"))


def tree_hash(root: Path) -> str:
    """Every file under root (ignored ones too, .git excluded): paths and bytes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if ".git" in path.relative_to(root).parts or not path.is_file():
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def execute(task_id: str, out_dir: Path, tag: str, **parameters) -> nbformat.NotebookNode:
    source = PROJECT_ROOT / get(task_id).notebook
    output = out_dir / f"{tag}-{source.name}"
    papermill.execute_notebook(
        str(source),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(PROJECT_ROOT),
    )
    return nbformat.read(output, as_version=4)


def step_statuses(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(STEPS_MIME)
            if payload:
                found += [(s["name"], s["status"]) for s in payload["steps"]]
    return found


@pytest.fixture(scope="module")
def warm_kernel():
    session = KernelSession()
    yield session
    session.shutdown(now=True)


def execute_warm(task_id: str, out_dir: Path, tag: str, session: KernelSession, **parameters):
    """One notebook through the runner's warm-kernel engine (what `runbook run` does, minus the ledger)."""
    source = PROJECT_ROOT / get(task_id).notebook
    output = out_dir / f"{tag}-{source.name}"
    papermill.execute_notebook(
        str(source), str(output), parameters=parameters, engine_name="runbook", session=session,
        progress_bar=False, cwd=str(PROJECT_ROOT),
    )  # fmt: skip
    return nbformat.read(output, as_version=4)


def run_all(
    app: Path, out_dir: Path, tag: str, dry_run: bool, session: KernelSession
) -> dict[str, list[tuple[str, str]]]:
    """The eight notebooks in the warm kernel, as the runner runs them (a kernel each would cost a
    second and the notebooks' imports every time)."""
    return {
        t: step_statuses(execute_warm(t, out_dir, f"{tag}-{t}", session, app_dir=str(app), dry_run=dry_run))
        for t in TASKS
    }


def test_dry_run_then_two_runs(app_copy, tmp_path, warm_kernel):
    out = tmp_path / "executed"
    out.mkdir()
    pristine = tree_hash(app_copy)

    planned = run_all(app_copy, out, "dry", dry_run=True, session=warm_kernel)
    assert tree_hash(app_copy) == pristine, "a dry run must not change any file"
    assert all(planned.values()), "every notebook reports its steps"
    statuses = {s for steps in planned.values() for _, s in steps}
    assert "changed" not in statuses and "would change" in statuses
    assert all(any(s == "would change" for _, s in planned[t]) for t in TASKS if t != "1.6")

    first = run_all(app_copy, out, "run1", dry_run=False, session=warm_kernel)
    for task in ("1.7", "1.8", "1.9", "1.10", "1.11", "1.12", "1.13"):
        assert any(s == "changed" for _, s in first[task]), (task, first[task])
    changed = tree_hash(app_copy)
    assert changed != pristine
    assert references.scan(app_copy) == []
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=app_copy, capture_output=True, text=True
    ).stdout
    assert " D docs/vm-setup.md" in status and "?? docs/troubleshooting-docker.md" in status
    assert "docs/queues.md" not in status, "the unrelated doc is untouched"

    second = run_all(app_copy, out, "run2", dry_run=False, session=warm_kernel)
    not_ok = {t: [x for x in steps if x[1] not in ("ok", "skipped")] for t, steps in second.items()}
    assert not any(not_ok.values()), not_ok
    assert tree_hash(app_copy) == changed, "the second run leaves every file byte-identical"


def test_missing_app_dir_stops_with_the_next_step(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError) as err:
        execute("1.8", tmp_path, "bad", app_dir=str(tmp_path / "no-such-app"))
    assert err.value.ename == "AppDirError"
    assert "does not exist" in err.value.evalue and "clone" in err.value.evalue


def test_malformed_package_json_stops_with_line_and_column(app_copy, tmp_path):
    path = app_copy / "package.json"
    path.write_text(path.read_text().replace('"private": true,', '"private": true'))
    before = path.read_bytes()
    with pytest.raises(papermill.PapermillExecutionError) as err:
        execute("1.8", tmp_path, "bad", app_dir=str(app_copy))
    assert err.value.ename == "PackageJsonError"
    assert "line 5, column 3" in err.value.evalue and "Next step" in err.value.evalue
    assert path.read_bytes() == before


def test_any_order_gives_the_same_repository(app_copy, tmp_path, warm_kernel):
    """1.6 to 1.13 share files (README, .env.example...): same end state in any order, second run all ok."""
    import random
    import shutil

    out = tmp_path / "executed"
    out.mkdir()
    orders = [TASKS, TASKS[::-1], random.Random(7).sample(TASKS, len(TASKS))]
    results = {}
    for n, tasks in enumerate(orders):
        app = tmp_path / f"order{n}"
        shutil.copytree(app_copy, app, symlinks=True)
        for task in tasks:  # a failed verification raises here, naming the notebook and cell
            execute_warm(task, out, f"o{n}-first-{task}", warm_kernel, app_dir=str(app))
        again = {
            task: step_statuses(execute_warm(task, out, f"o{n}-again-{task}", warm_kernel, app_dir=str(app)))
            for task in tasks
        }
        moved = {t: [s for s in steps if s[1] not in ("ok", "skipped")] for t, steps in again.items()}
        assert not any(moved.values()), (tasks, moved)
        results[tuple(tasks)] = tree_hash(app)
    assert len(set(results.values())) == 1, results


def test_the_verification_cells_catch_a_false_line_written_by_hand(app_copy, tmp_path, warm_kernel):
    """After the docs tasks, a line naming a removed script and the VM: 1.11's verification fails
    with its file:line (the docs checks run in the notebook), and 1.11 run again does not hide it."""
    for task in TASKS:
        execute_warm(task, tmp_path, f"first-{task}", warm_kernel, app_dir=str(app_copy))
    readme = app_copy / "README.md"
    lines = readme.read_text().splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.startswith("## Scripts")) + 2
    lines.insert(at, "Before anything else, open the VM with `pnpm vm:ssh`.\n\n")
    readme.write_text("".join(lines))
    with pytest.raises(papermill.PapermillExecutionError) as err:
        execute_warm("1.11", tmp_path, "false-line", warm_kernel, app_dir=str(app_copy))
    assert err.value.ename == "VerificationFailed"
    assert f"README.md:{at + 1}" in err.value.evalue
    assert "package.json has no script 'vm:ssh'" in err.value.evalue or "vm:ssh" in err.value.evalue
