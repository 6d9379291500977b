"""The task registry: the 33 tasks of Implementation 3 and the operations, read from ``tasks.yaml``.

Runner order, docs navigation, dependency diagrams and each notebook's
prerequisites all come from here, so nothing lists the tasks twice.

The phases' tasks have numbered ids (``1.4``: phase 1, notebook ``notebooks/phase1/1.04-<slug>.ipynb``).
A *group* that is not a chain (``chain: false``, the operations) has tasks with word ids (``rollback``)
and a ``group`` key; each runs alone (``runbook run operations --only rollback``) and its notebook is
``notebooks/<group>/<slug>.ipynb``.

>>> get("1.4").notebook
PosixPath('notebooks/phase1/1.04-start-services.ipynb')
>>> [t.id for t in order("phase1")][:6]
['1.1', '1.2', '1.3', '1.7', '1.8', '1.9']
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

REGISTRY = Path(__file__).with_name("tasks.yaml")

Kind = Literal["manual", "automated", "docs"]
KINDS: tuple[str, ...] = ("manual", "automated", "docs")
NUMBERED = re.compile(r"\d+\.\d+")
WORD = re.compile(r"[a-z][a-z0-9-]*")
GROUP_MAJOR = 1000  # word-id tasks sort after every numbered phase, in registry order


class RegistryError(ValueError):
    """The registry file is inconsistent (unknown dependency, cycle, duplicate id...)."""


class UnknownTask(KeyError):
    """A task id that the registry does not list."""

    def __str__(self) -> str:
        return (
            f"unknown task {self.args[0]!r}; known ids look like 1.4, 2.13 or rollback (see `runbook list`)"
        )


@dataclass(frozen=True)
class Task:
    id: str
    slug: str
    title: str
    kind: Kind
    needs: tuple[str, ...]
    position: int = 0  # place in tasks.yaml: breaks ties where the dependencies leave a choice
    group: str = ""  # a word-id task's group (``operations``); numbered ids derive their phase

    @property
    def numbered(self) -> bool:
        """``1.4`` (a phase's task) rather than ``rollback`` (an operation)."""
        return bool(NUMBERED.fullmatch(self.id))

    @property
    def phase(self) -> str:
        return self.group or f"phase{self.id.split('.')[0]}"

    @property
    def key(self) -> tuple[int, int]:
        """Numeric sort key: 1.10 after 1.9; word ids after every phase, in registry order."""
        if not self.numbered:
            return GROUP_MAJOR, self.position
        major, minor = self.id.split(".")
        return int(major), int(minor)

    @property
    def stem(self) -> str:
        if not self.numbered:
            return self.slug
        major, minor = self.key
        return f"{major}.{minor:02d}-{self.slug}"

    @property
    def notebook(self) -> Path:
        """Path of the task's notebook, relative to the project root."""
        return Path("notebooks") / self.phase / f"{self.stem}.ipynb"

    @property
    def label(self) -> str:
        return f"{self.id} {self.title}" if self.numbered else self.title


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    success: str
    chain: bool = True  # False: a group of tasks that each run alone (``--only ID``), not a chain


def parse(data: dict, source: str = "tasks.yaml") -> tuple[dict[str, Phase], dict[str, Task]]:
    """Phases and tasks from a registry document (``tasks.yaml``'s schema), validated.

    Raises :class:`RegistryError` on a duplicate id, an unknown kind or phase, a dependency the
    document does not list, or a cycle. ``source`` names the document in those messages.
    """
    phases = {name: Phase(name=name, **body) for name, body in data["phases"].items()}
    tasks: dict[str, Task] = {}
    for position, row in enumerate(data["tasks"]):
        task = Task(
            id=str(row["id"]),
            slug=row["slug"],
            title=row["title"],
            kind=row["kind"],
            needs=tuple(str(n) for n in row.get("needs", [])),
            position=position,
            group=str(row.get("group") or ""),
        )
        if not task.numbered and not (WORD.fullmatch(task.id) and task.group):
            raise RegistryError(
                f"task {task.id!r} in {source}: an id is N.M (a phase's task) or a lower-case word with a "
                "group (`group: operations`)"
            )
        if task.id in tasks:
            raise RegistryError(f"task {task.id} is listed twice in {source}")
        if task.kind not in KINDS:
            raise RegistryError(f"task {task.id}: kind {task.kind!r} is not one of {', '.join(KINDS)}")
        if task.phase not in phases:
            raise RegistryError(f"task {task.id}: its phase {task.phase} is not declared in {source}")
        tasks[task.id] = task
    for task in tasks.values():
        missing = [d for d in task.needs if d not in tasks]
        if missing:
            raise RegistryError(f"task {task.id} needs {', '.join(missing)}, which {source} does not list")
    topological(tasks.values())  # raises on a cycle
    return phases, tasks


@functools.cache
def _load() -> tuple[dict[str, Phase], dict[str, Task]]:
    return parse(yaml.safe_load(REGISTRY.read_text(encoding="utf-8")), REGISTRY.name)


def phases() -> dict[str, Phase]:
    return dict(_load()[0])


def all_tasks() -> list[Task]:
    """Every task, sorted by id (1.1, 1.2, ..., 1.10, ..., 2.18)."""
    return sorted(_load()[1].values(), key=lambda t: t.key)


def get(task_id: str) -> Task:
    try:
        return _load()[1][str(task_id)]
    except KeyError:
        raise UnknownTask(task_id) from None


def in_phase(phase: str) -> list[Task]:
    if phase not in _load()[0]:
        raise KeyError(f"unknown phase {phase!r}; choose one of {', '.join(_load()[0])}")
    return [t for t in all_tasks() if t.phase == phase]


def _tie(task: Task) -> tuple[int, tuple[int, int]]:
    return task.position, task.key


def topological(tasks: Iterable[Task]) -> list[Task]:
    """Dependency order of any set of tasks (Kahn's algorithm).

    Among ready tasks the one listed first in tasks.yaml goes first (the plan's order), then the
    lowest id. Dependencies on tasks outside the set (2.1 needing 1.15) are ignored.
    """
    members = {t.id: t for t in tasks}
    waiting = {tid: {d for d in t.needs if d in members} for tid, t in members.items()}
    done: list[Task] = []
    while waiting:
        ready = sorted(
            (t for t, deps in waiting.items() if not deps),
            key=lambda t: (members[t].position, members[t].key),
        )
        if not ready:
            raise RegistryError(f"dependency cycle among tasks {', '.join(sorted(waiting))}")
        first = ready[0]
        done.append(members[first])
        del waiting[first]
        for deps in waiting.values():
            deps.discard(first)
    return done


def parallel_levels(tasks: Iterable[Task]) -> list[list[Task]]:
    """Parallel groups of any set of tasks: each depends only on tasks of earlier groups."""
    ordered = topological(tasks)
    depth: dict[str, int] = {}
    for task in ordered:
        inside = [depth[d] for d in task.needs if d in depth]
        depth[task.id] = 1 + max(inside) if inside else 0
    if not ordered:
        return []
    groups: list[list[Task]] = [[] for _ in range(max(depth.values()) + 1)]
    for task in sorted(ordered, key=lambda t: t.key):
        groups[depth[task.id]].append(task)
    return groups


def ancestors_among(task_id: str, tasks: Iterable[Task]) -> set[str]:
    """Every task of ``tasks`` that ``task_id`` depends on, directly or not."""
    index = {t.id: t for t in tasks}
    seen: set[str] = set()
    stack = list(index[task_id].needs) if task_id in index else []
    while stack:
        dep = stack.pop()
        if dep in index and dep not in seen:
            seen.add(dep)
            stack.extend(index[dep].needs)
    return seen


def order(phase: str) -> list[Task]:
    """The phase's tasks in dependency order (the order the runner executes them)."""
    return topological(in_phase(phase))


def levels(phase: str) -> list[list[Task]]:
    """Parallel groups: every task of a group depends only on earlier groups."""
    return parallel_levels(in_phase(phase))


def ancestors(task_id: str) -> set[str]:
    """Every task that ``task_id`` depends on, directly or not."""
    get(task_id)  # unknown ids raise
    return ancestors_among(task_id, all_tasks())


def dependents(task_id: str) -> set[str]:
    """Every task that depends on ``task_id``, directly or not."""
    return {t.id for t in all_tasks() if task_id in ancestors(t.id)}


def direct_edges(phase: str) -> list[tuple[str, str]]:
    """The phase's edges with implied ones removed (transitive reduction), for diagrams."""
    edges = []
    for task in in_phase(phase):
        for dep in task.needs:
            implied = any(dep in ancestors(other) for other in task.needs if other != dep)
            if not implied:
                edges.append((dep, task.id))
    return edges


def _node(task_id: str) -> str:
    return "t" + re.sub(r"[^A-Za-z0-9]", "_", task_id)


def mermaid(phase: str) -> str:
    """A Mermaid flowchart of the phase's dependency graph."""
    lines = ["flowchart TD"]
    members = {t.id for t in in_phase(phase)}
    for task in in_phase(phase):
        lines.append(f'    {_node(task.id)}["{task.label}"]:::{task.kind}')
    for dep, tid in direct_edges(phase):
        if dep in members:
            lines.append(f"    {_node(dep)} --> {_node(tid)}")
    lines += [
        "    classDef manual fill:#fff3cd,stroke:#b58900",
        "    classDef automated fill:#d1ecf1,stroke:#0c5460",
        "    classDef docs fill:#e2e3f3,stroke:#383d75",
    ]
    return "\n".join(lines)


def show_prerequisites(task_id: str) -> Task:
    """Notebook helper: show what this task builds on, straight from the registry."""
    from helpers.core.display import show_table

    task = get(task_id)
    rows = [(dep, get(dep).title, get(dep).kind) for dep in task.needs] or [("—", "nothing: start here", "")]
    show_table(
        ("needs", "task", "kind"),
        rows,
        title=f"Task {task.id} ({task.kind}): {task.title}. Prerequisites:",
    )
    return task
