"""Every task notebook follows the runbook's shape (CONTRIBUTING.md, "A task notebook")."""

from __future__ import annotations

import logging

import nbformat
import pytest
from papermill.translators import PythonTranslator

from helpers.core import secrets, tasks
from helpers.core.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
PHASE1 = [t for t in tasks.all_tasks() if t.phase == "phase1"]
OPERATIONS = tasks.in_phase("operations")
WRITTEN = [t for t in tasks.all_tasks() if (ROOT / t.notebook).exists()]


def load(task: tasks.Task) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / task.notebook, as_version=4)


def parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"expected one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


@pytest.mark.parametrize("task", PHASE1 + OPERATIONS, ids=lambda t: t.id)
def test_every_phase1_task_and_operation_has_its_notebook(task):
    assert (ROOT / task.notebook).is_file(), f"missing {task.notebook}"


def test_no_stray_notebooks_outside_the_registry():
    known = {ROOT / t.notebook for t in tasks.all_tasks()}
    stray = [p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    assert sorted(set(stray) - known) == []


@pytest.mark.parametrize("task", WRITTEN, ids=lambda t: t.id)
def test_notebook_shape(task):
    nb = load(task)
    first = nb.cells[0]
    title = f"# {task.id} " if task.numbered else f"# {task.title}\n"  # an operation's heading is its title
    assert first.cell_type == "markdown" and first.source.startswith(title), "title cell"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert f'show_prerequisites("{task.id}")' in code, "prerequisites come from the registry"
    assert "verify(" in code or "verify_run(" in code, "a verification cell that raises on failure"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "committed without outputs"
            assert len(cell.source.splitlines()) <= 40, f"a {len(cell.source.splitlines())}-line cell"


@pytest.mark.parametrize("task", WRITTEN, ids=lambda t: t.id)
def test_parameters_parse_with_papermill_and_carry_no_secret(task, caplog):
    cell = parameters_cell(load(task))
    with caplog.at_level(logging.WARNING, logger="papermill"):
        params = PythonTranslator.inspect(cell)
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()], caplog.text
    assignments = [ln for ln in cell.source.splitlines() if ln and not ln.startswith(("#", "import", "from"))]
    assert len(params) == len(assignments)
    for p in params:
        assert not secrets.is_secret_name(p.name), f"parameter {p.name} looks like a secret"
        assert p.help, f"parameter {p.name} has no `# comment` saying what it is"
