"""Phase 1 twice in a row on a fresh copy of the sample app: the second run changes nothing.

The automated and docs notebooks run with papermill in the registry's dependency order, against a
:class:`helpers.runner.sampleapp.Sandbox` (its own compose project ``rb-e2e-idem-<hex>``, free ports, the
stand-in app, ``RUNBOOK_ALLOW_COMMIT=1``). After the second run, every step the notebooks report
(their ``application/vnd.runbook.steps+json`` outputs) is ``ok`` or ``skipped``, the app repository's
tree hash (every non-ignored file) and HEAD are what the first run left, and the first run did change
things (so the comparison is not vacuous). Along the way: 1.14 with ``commit=False`` commits nothing
and fails its verification, and with commit allowed it leaves someone's unrelated changes alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from services_support import notebook_outputs

from helpers.app import gitrepo
from helpers.core import tasks
from helpers.core.paths import PROJECT_ROOT
from helpers.core.steps import MIME as STEPS_MIME
from helpers.runner import sampleapp

pytestmark = [pytest.mark.engine, pytest.mark.slow]

PHASE1 = [t for t in tasks.order("phase1") if t.kind in ("automated", "docs")]


@pytest.fixture
def sandbox() -> Iterator[sampleapp.Sandbox]:
    box = sampleapp.Sandbox.create(f"rb-e2e-idem-{uuid.uuid4().hex[:8]}")
    box.apply()
    try:
        yield box
    finally:
        problems = box.teardown()
        assert not problems, problems


def execute(task: tasks.Task, target: Path, **parameters: object) -> None:
    import papermill

    papermill.execute_notebook(
        str(PROJECT_ROOT / task.notebook),
        str(target),
        parameters=parameters,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(PROJECT_ROOT),
    )


def refused_commit(task: tasks.Task, app: Path, out_dir: Path) -> None:
    """1.14 with commit=False: shows the plan, commits nothing, and its verification fails."""
    import papermill

    head = gitrepo.head(app)
    with pytest.raises(papermill.PapermillExecutionError, match="no runbook change left uncommitted"):
        execute(task, out_dir / "1.14-refused.ipynb", commit=False)
    assert gitrepo.head(app) == head


def run_phase(out_dir: Path, app: Path, refuse_commit_first: bool = False) -> dict[str, list[dict]]:
    """Execute the notebooks in order; return each task's reported steps."""
    import papermill

    out_dir.mkdir()
    steps: dict[str, list[dict]] = {}
    for task in PHASE1:
        target = out_dir / task.notebook.name
        if task.id == "1.14" and refuse_commit_first:
            refused_commit(task, app, out_dir)
        try:
            execute(task, target)
        except papermill.PapermillExecutionError as exc:
            pytest.fail(
                f"{out_dir.name}: task {task.id} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}"
            )
        steps[task.id] = [s for payload in notebook_outputs(target, STEPS_MIME) for s in payload["steps"]]
    return steps


def test_phase1_twice_the_second_run_changes_nothing(sandbox: sampleapp.Sandbox, tmp_path: Path) -> None:
    missing = [str(t.notebook) for t in PHASE1 if not (PROJECT_ROOT / t.notebook).is_file()]
    assert not missing, f"phase-1 notebooks missing: {missing}"
    app = sandbox.app_dir
    # someone's work in progress, which 1.14 must leave alone
    (app / "notes.txt").write_text("my notes\n")
    page = app / "apps" / "web" / "src" / "app" / "page.tsx"
    page.write_text(page.read_text() + "// work in progress\n")
    unrelated = [gitrepo.Change(" M", "apps/web/src/app/page.tsx"), gitrepo.Change("??", "notes.txt")]
    baseline = (gitrepo.tree_hash(app), gitrepo.head(app))

    first = run_phase(tmp_path / "run1", app, refuse_commit_first=True)
    after_first = (gitrepo.tree_hash(app), gitrepo.head(app))
    changed = [(tid, s["name"]) for tid, found in first.items() for s in found if s["status"] == "changed"]
    assert changed, "the first run changed nothing: the comparison below would prove nothing"
    assert after_first != baseline
    assert gitrepo.changes(app) == unrelated, "1.14 committed too much or too little"
    assert not {"notes.txt", "apps/web/src/app/page.tsx", ".env"} & set(gitrepo.committed_paths(app))

    second = run_phase(tmp_path / "run2", app)
    not_ok = [
        f"{tid} {s['name']}: {s['status']} ({s['detail']})"
        for tid, found in second.items()
        for s in found
        if s["status"] not in ("ok", "skipped")
    ]
    assert not not_ok, "second run changed things:\n" + "\n".join(not_ok)
    silent = [tid for tid, found in first.items() if found and not second[tid]]
    assert not silent, f"tasks that reported steps the first time and none the second: {silent}"
    assert (gitrepo.tree_hash(app), gitrepo.head(app)) == after_first
