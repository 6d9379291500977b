"""Markdown the site generates: the pages of tasks not written yet, and the ``<!-- runbook:... -->`` markers.

The hand-written pages in ``docs/`` hold markers that are replaced at build time with what the
project already knows, so that the pages cannot drift from it:

=============================================  ====================================================
``<!-- runbook:graph phase1 -->``              the phase's dependency graph (Mermaid, from the registry)
``<!-- runbook:tasks phase1 -->``              the phase's tasks in run order, linked to their pages
``<!-- runbook:levels phase1 -->``             the run order's parallel groups
``<!-- runbook:task-count [phase1] -->``       how many tasks (in the phase)
``<!-- runbook:troubleshooting-by-task -->``   a section per task, linking the problems that apply to it
``<!-- runbook:secrets -->``                   the runbook's secrets (:mod:`helpers.core.secrets`)
``<!-- runbook:production-env -->``            the production variables (:mod:`helpers.app.prodenv`)
``<!-- runbook:not-in-production -->``         the development-only variables (the same module)
=============================================  ====================================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from helpers.app import prodenv
from helpers.core import tasks as registry
from helpers.core.secrets import SECRETS
from helpers.docsite.errors import DocsiteError
from helpers.docsite.taskpages import KIND_TEXT, TaskPage, relative_link

MARKER = re.compile(r"<!--\s*runbook:([a-z-]+)((?:\s+[\w.\-]+)*)\s*-->")
APPLIES = re.compile(r"<!--\s*applies-to:([\s\w.,-]+)-->")  # task ids: 1.4, rollback
HEADING_WITH_ID = re.compile(r"^(#{2,4})\s+(.+?)\s*\{[^}]*#([\w-]+)[^}]*\}\s*$", re.M)
PAGE_KIND = {
    "reference": "notebook, with reference outputs",
    "bare": "notebook",
    "stale": "notebook",
    "missing": "not written yet",
}
GENERIC_ADVICE = {
    "manual": "This task is done by hand; its notebook verifies the result. Redo the step the ❌ row names, "
    "then run the notebook again (or `runbook resume`).",
    "automated": "Read the ❌ row of the failing verification: its *next step* says what to fix. The task is "
    "idempotent: fix the cause and run it again (`runbook resume` continues the phase from here).",
    "docs": "The notebook changes the app's documentation: check `app_dir` points at the app repository and "
    "that the file is not open in an editor with unsaved changes; run it with `dry_run=True` to see the "
    "diff.",
}


def task_link(
    task_id: str, pages: Mapping[str, TaskPage], from_src_uri: str, label: str | None = None
) -> str:
    page = pages[task_id]
    return f"[{label or page.task.label}]({relative_link(page.src_uri, from_src_uri)})"


def missing_page_markdown(page: TaskPage, pages: Mapping[str, TaskPage]) -> str:
    """The honest page of a task whose notebook does not exist yet: registry facts only."""
    task = page.task
    here = page.src_uri
    needs = (
        ", ".join(task_link(d, pages, here) for d in task.needs) or "nothing: this is where the plan starts"
    )
    needed_by = sorted((t for t in registry.all_tasks() if task.id in t.needs), key=lambda t: t.key)
    by = ", ".join(task_link(t.id, pages, here) for t in needed_by) or "nothing: this is the last task"
    trouble = relative_link("troubleshooting.md", here) + f"#{page.anchor}"
    notebook = task.notebook.as_posix()
    return "\n".join(
        [
            f"# {task.label}",
            "",
            '!!! warning "Not written yet"',
            f"    The notebook of this task, `{notebook}`, does not exist yet. This page is",
            "    generated from the task registry (`helpers/core/tasks.yaml`) so that the plan reads end to"
            " end;",
            "    it has no steps and no outputs. When the notebook lands, the next build renders it here, at",
            "    the same address.",
            "",
            "| | |",
            "|---|---|",
            f"| Task | {task.id} |",
            f"| Phase | {registry.phases()[task.phase].title} |",
            f"| Kind | {KIND_TEXT[task.kind]} |",
            f"| Needs | {needs} |",
            f"| Needed by | {by} |",
            f"| Notebook | `{notebook}` (not written yet) |",
            f"| When it fails | [Troubleshooting, task {task.id}]({trouble}) |",
            "",
        ]
    )


def graph_markdown(phase: str) -> str:
    return f"```mermaid\n{registry.mermaid(phase)}\n```"


def tasks_table_markdown(phase: str, pages: Mapping[str, TaskPage], from_src_uri: str) -> str:
    rows = ["| step | task | kind | needs | page |", "|---|---|---|---|---|"]
    for n, task in enumerate(registry.order(phase), start=1):
        page = pages[task.id]
        needs = ", ".join(task_link(d, pages, from_src_uri, d) for d in task.needs) or "—"
        kind = PAGE_KIND[page.state]
        if page.run and page.run.get("kind") not in (None, "reference"):
            kind = f"notebook, with {page.run['kind']} outputs"
        rows.append(f"| {n} | {task_link(task.id, pages, from_src_uri)} | {task.kind} | {needs} | {kind} |")
    return "\n".join(rows)


def levels_markdown(phase: str) -> str:
    lines = []
    for n, group in enumerate(registry.levels(phase), start=1):
        ids = ", ".join(t.id for t in group)
        lines.append(f"{n}. {ids}" + (" (independent of each other)" if len(group) > 1 else ""))
    return "\n".join(lines)


@dataclass
class GuideSection:
    title: str
    anchor: str
    applies_to: tuple[str, ...]


def guide_sections(markdown: str) -> list[GuideSection]:
    """Headings with an explicit ``{#anchor}`` followed by an ``<!-- applies-to: 1.3 1.4 -->`` comment."""
    sections = []
    matches = list(HEADING_WITH_ID.finditer(markdown))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(markdown)
        applies = APPLIES.search(markdown[m.end() : end])
        if applies:
            ids = tuple(x for x in re.split(r"[\s,]+", applies.group(1).strip()) if x)
            for task_id in ids:
                registry.get(task_id)  # raises UnknownTask on a typo
            sections.append(GuideSection(m.group(2).strip(), m.group(3), ids))
    return sections


def troubleshooting_by_task_markdown(markdown: str, pages: Mapping[str, TaskPage], from_src_uri: str) -> str:
    sections = guide_sections(markdown)
    out: list[str] = []
    for phase, info in registry.phases().items():
        out += [f"### {info.title} {{#by-task-{phase}}}", ""]
        for task in registry.order(phase):
            page = pages[task.id]
            out += [f"#### {task.label} {{#{page.anchor}}}", ""]
            link = task_link(task.id, pages, from_src_uri, "The task page")
            out.append(f"{link} ({task.kind}). " + GENERIC_ADVICE[task.kind])
            related = [s for s in sections if task.id in s.applies_to]
            if related:
                seen = ", ".join(f"[{s.title}](#{s.anchor})" for s in related)
                out += ["", f"Problems seen at this step: {seen}."]
            out.append("")
    return "\n".join(out)


def secrets_markdown() -> str:
    rows = ["| name | what it is | where it comes from |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {s.purpose} | {s.source} |" for s in SECRETS.values()]
    return "\n".join(rows)


def _task_count(args: list[str]) -> str:
    phases = [t for t in registry.all_tasks() if t.numbered]  # the operations are not counted
    return str(len(registry.in_phase(args[0])) if args else len(phases))


Expander = Callable[[list[str], str, str, Mapping[str, TaskPage]], str]
# marker name → (its arguments, the page's src_uri, the page's whole markdown, the task pages) → markdown
MARKERS: dict[str, Expander] = {
    "graph": lambda args, uri, md, pages: graph_markdown(args[0]),
    "tasks": lambda args, uri, md, pages: tasks_table_markdown(args[0], pages, uri),
    "levels": lambda args, uri, md, pages: levels_markdown(args[0]),
    "troubleshooting-by-task": lambda args, uri, md, pages: troubleshooting_by_task_markdown(md, pages, uri),
    "secrets": lambda args, uri, md, pages: secrets_markdown(),
    "production-env": lambda args, uri, md, pages: prodenv.production_env_markdown(),
    "not-in-production": lambda args, uri, md, pages: prodenv.not_in_production_markdown(),
    "task-count": lambda args, uri, md, pages: _task_count(args),
}


def expand_markers(markdown: str, src_uri: str, pages: Mapping[str, TaskPage]) -> str:
    """Every ``<!-- runbook:NAME args -->`` of a page replaced by what :data:`MARKERS` makes of it."""

    def replace(m: re.Match[str]) -> str:
        name, args = m.group(1), m.group(2).split()
        if name not in MARKERS:
            raise DocsiteError(f"{src_uri}: unknown marker <!-- runbook:{name} -->")
        try:
            return MARKERS[name](args, src_uri, markdown, pages)
        except prodenv.ProductionEnvError as exc:
            raise DocsiteError(f"{src_uri}: {exc}") from None

    return MARKER.sub(replace, markdown)
