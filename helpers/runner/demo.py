"""A small synthetic phase for trying the runner, benchmarking it and testing it.

``python -m helpers.runner.demo DIR`` writes ``DIR/tasks.yaml`` and ``DIR/notebooks/phase1/*.ipynb``:
six tasks shaped like the real phase 1 (a chain, then two independent tasks, then a join), each
notebook written the project's way (parameters cell, a step reported with ``helpers.core.steps``, a
verification with ``helpers.core.checks``). Then::

    RUNBOOK_REGISTRY=DIR/tasks.yaml DEMO_WORK_DIR=/tmp/demo runbook run phase1
    DEMO_BROKEN=1.4 ... runbook run phase1      # task 1.4's verification fails on purpose
    RUNBOOK_REGISTRY=DIR/tasks.yaml runbook resume

Tests build variants (extra cells, other dependencies) with :func:`write_phase`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helpers.core import steps

PARAMETERS = (
    "import os\n"
    "from helpers.core.settings import env\n"
    'work_dir = os.environ.get("DEMO_WORK_DIR", "")  # folder the demo tasks write into\n'
    "dry_run = env.dry_run  # show what would change, change nothing\n"
    'label = "demo"  # text written into the task\'s file'
)


def touch(work_dir: str, name: str, text: str, dry_run: bool = False) -> steps.StepResult:
    """Write ``work_dir/name`` with ``text``: the demo tasks' idempotent step."""
    if not work_dir:
        return steps.failed(f"write {name}", "work_dir is empty: set DEMO_WORK_DIR or pass -p work_dir DIR")
    path = Path(work_dir) / name
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return steps.ok(f"write {name}")
    if dry_run:
        return steps.changed(f"write {name}", f"would write {len(text)} characters", dry_run=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return steps.changed(f"write {name}", f"wrote {len(text)} characters")


def _step_cells(task_id: str) -> list[str]:
    return [
        f"from helpers.core import steps\nfrom helpers.runner.demo import touch\n"
        f"_ = steps.report(touch(work_dir, 'task-{task_id}.txt', label, dry_run=dry_run),\n"
        f"                 title='Task {task_id}')",
        "from helpers.core.checks import verify\n"
        "if not dry_run:\n"
        f"    with verify('Task {task_id} is done') as check:\n"
        f"        written = os.path.join(work_dir, 'task-{task_id}.txt')\n"
        "        check('file written', os.path.isfile(written), written, hint='run the step above again')\n"
        f"        check('not broken on purpose', os.environ.get('DEMO_BROKEN', '') != '{task_id}',\n"
        "              'DEMO_BROKEN names this task', hint='unset DEMO_BROKEN, then `runbook resume`')",
    ]


def _manual_cells(task_id: str) -> list[str]:
    return [
        "from helpers.core.checks import verify\n"
        f"with verify('Task {task_id}: the work folder exists') as check:\n"
        "    check('work_dir set', bool(work_dir), work_dir or '(empty)', hint='export DEMO_WORK_DIR')",
    ]


@dataclass
class DemoTask:
    id: str
    slug: str
    kind: str
    needs: list[str]
    title: str
    cells: list[str] | None = None  # default: the standard step + verification (or manual check)
    parameters: str | None = PARAMETERS
    metadata: dict = field(default_factory=dict)


def standard_tasks() -> list[DemoTask]:
    return [
        DemoTask("1.1", "first", "automated", [], "First step"),
        DemoTask("1.2", "manual-step", "manual", ["1.1"], "A person does something"),
        DemoTask("1.3", "third", "automated", ["1.2"], "Third step"),
        DemoTask("1.4", "left", "automated", ["1.3"], "Left branch"),
        DemoTask("1.5", "right", "docs", ["1.3"], "Right branch (docs)"),
        DemoTask("1.6", "join", "automated", ["1.4", "1.5"], "Join"),
    ]


def notebook_for(task: DemoTask) -> Any:
    import nbformat  # not at module level: notebooks import this module, and nbformat is slow to import

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.metadata.update(task.metadata)
    cells = [nbformat.v4.new_markdown_cell(f"# {task.id} {task.title}\n\nA demo task ({task.kind}).")]
    if task.parameters is not None:
        param = nbformat.v4.new_code_cell(task.parameters)
        param.metadata["tags"] = ["parameters"]
        cells.append(param)
    body = (
        task.cells
        if task.cells is not None
        else (_manual_cells(task.id) if task.kind == "manual" else _step_cells(task.id))
    )
    cells += [nbformat.v4.new_code_cell(src) for src in body]
    nb.cells = cells
    return nb


def write_phase(folder: Path, tasks: list[DemoTask] | None = None, phase: str = "phase1") -> Path:
    """Write a registry file and the tasks' notebooks under ``folder``; returns the registry path."""
    folder = Path(folder)
    tasks = tasks if tasks is not None else standard_tasks()
    registry = {
        "phases": {phase: {"title": f"Demo {phase}", "success": "every demo task passes"}},
        "tasks": [
            {"id": t.id, "slug": t.slug, "kind": t.kind, "title": t.title, "needs": t.needs} for t in tasks
        ],
    }
    out = folder / "tasks.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(registry, sort_keys=False), encoding="utf-8")
    for task in tasks:
        major, minor = (int(x) for x in task.id.split("."))
        path = folder / "notebooks" / phase / f"{major}.{minor:02d}-{task.slug}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        import nbformat

        nbformat.write(notebook_for(task), path)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m helpers.runner.demo DIR", file=sys.stderr)
        return 2
    registry = write_phase(Path(args[0]))
    print(
        f"wrote {registry}\ntry: RUNBOOK_REGISTRY={registry} DEMO_WORK_DIR={os.path.join(args[0], 'work')} "
        "runbook run phase1"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
