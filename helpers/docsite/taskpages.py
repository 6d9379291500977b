"""Which file each task's page is rendered from, under which title, and the navigation made of them.

A task's page has one address whatever it shows: ``phaseN/<stem>.ipynb`` when the notebook exists
(rendered from the published reference run when that run passed it and the notebook has not changed
since, else bare, with the reason), ``phaseN/<stem>.md`` generated from the registry when the
notebook is not written yet.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from helpers.core import tasks as registry
from helpers.core.paths import PROJECT_ROOT
from helpers.core.tasks import Task
from helpers.docsite.errors import DocsiteError
from helpers.docsite.published import Result, describe_run, file_sha256, results
from helpers.runner.ledger import troubleshooting_anchor as _runner_anchor

NAV_MARKER = "registry:"
KIND_TEXT = {
    "manual": "manual: a person does the step, the notebook explains it and verifies the result",
    "automated": "automated: the notebook does the step (dry-run first if you like) and verifies it",
    "docs": "docs: the notebook edits the app's documentation, shows the diff and verifies it",
}

State = Literal["reference", "bare", "stale", "missing"]


@dataclass(frozen=True)
class TaskPage:
    task: Task
    src_uri: str  # the page's path inside the site's docs, e.g. "phase1/1.04-start-services.ipynb"
    state: State
    source: Path | None  # the notebook rendered (reference copy or bare); None when missing
    title: str
    reason: str = ""  # why there are no outputs (bare/stale) or where they come from (reference)
    run: Mapping[str, Any] | None = None  # the published run whose outputs are shown (reference)

    @property
    def anchor(self) -> str:
        return troubleshooting_anchor(self.task.id)


def troubleshooting_anchor(task_id: str) -> str:
    """The anchor of a task on the troubleshooting page (the runner's rule): ``1.4`` → ``task-1-4``."""
    registry.get(task_id)  # an unknown id is an error here, not a dead link
    return _runner_anchor(task_id)


def troubleshooting_url(task_id: str) -> str:
    """Link target, relative to the docs root, that the runner's failure summary points at."""
    return f"troubleshooting.md#{troubleshooting_anchor(task_id)}"


def page_stem(task: Task) -> str:
    return f"{task.phase}/{task.stem}"


def relative_link(target_src_uri: str, from_src_uri: str) -> str:
    """A Markdown link target from one docs page to another (paths as in the docs folder)."""
    return posixpath.relpath(target_src_uri, posixpath.dirname(from_src_uri) or ".")


def notebook_title(path: Path) -> str | None:
    """The text of the notebook's first level-1 heading (``# ...`` in a markdown cell)."""
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            title = _first_heading("".join(source) if isinstance(source, list) else source)
            if title:
                return title
    return None


def _first_heading(text: str) -> str | None:
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if not in_fence and re.match(r"^#\s+\S", line):
            return re.sub(r"[*_`]", "", line[1:]).strip().rstrip("#").strip()
    return None


def nav_title(task: Task, heading: str | None) -> str:
    """The notebook's heading, prefixed with the task id when the heading lacks it."""
    if not heading:
        return task.label
    if not task.numbered:  # an operation: its heading is its title
        return heading
    return heading if heading.split()[0].rstrip(".:") == task.id else f"{task.id} {heading}"


def task_page(task: Task, result: Result | None, outputs_off: bool = False) -> TaskPage:
    """Decide how a task's page is made: reference output, bare notebook, or 'not written yet'."""
    bare = PROJECT_ROOT / task.notebook
    stem = page_stem(task)
    if not bare.is_file():
        return TaskPage(task, f"{stem}.md", "missing", None, task.label, "the notebook is not written yet")
    title = nav_title(task, notebook_title(bare))
    uri = f"{stem}.ipynb"
    if outputs_off:
        return TaskPage(task, uri, "bare", bare, title, "reference outputs are switched off for this build")
    if result is None:
        reason = "no reference run has executed this notebook (it needs a Docker engine)"
        return TaskPage(task, uri, "bare", bare, title, reason)
    if result.problem:
        reason = f"the reference run did not pass this task ({result.problem})"
        return TaskPage(task, uri, "bare", bare, title, reason)
    if not result.executed.is_file():
        return TaskPage(task, uri, "bare", bare, title, f"the reference run's copy {result.executed} is gone")
    if result.source_sha256 != file_sha256(bare):
        return TaskPage(task, uri, "stale", bare, title, "the notebook changed after the last reference run")
    return TaskPage(task, uri, "reference", result.executed, title, describe_run(result.run), result.run)


def task_pages(ref_dir: Path | None = None) -> dict[str, TaskPage]:
    """Every task's page, from the reference folder (None: reference outputs switched off)."""
    found = results(ref_dir)
    return {t.id: task_page(t, found.get(t.id), ref_dir is None) for t in registry.all_tasks()}


def expand_nav(nav: list[Any], pages: Mapping[str, TaskPage]) -> list[Any]:
    """Replace ``{"Title": "registry:phaseN"}`` entries with the phase's task pages, in run order."""
    out: list[Any] = []
    for item in nav:
        if isinstance(item, dict) and len(item) == 1:
            ((title, value),) = item.items()
            if isinstance(value, str) and value.startswith(NAV_MARKER):
                out.append({title: _phase_nav(value[len(NAV_MARKER) :], pages)})
                continue
            if isinstance(value, list):
                out.append({title: expand_nav(value, pages)})
                continue
        out.append(item)
    return out


def _phase_nav(phase: str, pages: Mapping[str, TaskPage]) -> list[dict[str, str]]:
    try:
        ordered = registry.order(phase)
    except KeyError as exc:
        raise DocsiteError(
            f"mkdocs.yml nav: {NAV_MARKER + phase!r} names no phase of the registry ({exc})"
        ) from None
    return [{pages[t.id].title: pages[t.id].src_uri} for t in ordered]
