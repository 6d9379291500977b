"""Run order, parallel groups and task selection (``--from``, ``--to``, ``--only``).

Everything here works on a plain list of :class:`~helpers.core.tasks.Task`, so tests can hand in a
synthetic registry; on the project's registry the results equal :func:`helpers.core.tasks.order` and
:func:`helpers.core.tasks.levels` (a unit test holds them to it).

``--from`` and ``--to`` cut the run order that ``runbook plan`` and ``runbook list`` print
(inclusive at both ends): what you see is what runs. ``--only`` runs exactly the given tasks, in
run order; their prerequisites are assumed done (a failing verification will say otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from helpers.core import tasks as registry
from helpers.core.tasks import Task


class SelectionError(ValueError):
    """A --from/--to/--only selection that does not fit the phase."""


# The registry's own functions work on any collection of tasks: the runner reuses them.
order = registry.topological
levels = registry.parallel_levels


def ancestors(task_id: str, tasks: Iterable[Task]) -> set[str]:
    """Every task among ``tasks`` that ``task_id`` depends on, directly or not."""
    return registry.ancestors_among(task_id, tasks)


@dataclass(frozen=True)
class Selection:
    start: str | None = None
    stop: str | None = None
    only: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.only:
            return "--only " + " ".join(self.only)
        parts = [f"--from {self.start}" if self.start else "", f"--to {self.stop}" if self.stop else ""]
        return " ".join(p for p in parts if p) or "all tasks"


@dataclass
class Plan:
    """The phase's tasks in run order, which of them are selected, and the parallel groups."""

    phase: str
    tasks: list[Task]
    selected: list[str]
    selection: Selection = field(default_factory=Selection)

    @property
    def groups(self) -> list[list[Task]]:
        return levels(self.tasks)

    def group_of(self, task_id: str) -> int:
        for number, group in enumerate(self.groups, start=1):
            if any(t.id == task_id for t in group):
                return number
        raise KeyError(task_id)

    def get(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)

    def selected_tasks(self) -> list[Task]:
        chosen = set(self.selected)
        return [t for t in self.tasks if t.id in chosen]

    def needs(self, task_id: str) -> list[str]:
        """Direct prerequisites of ``task_id`` inside this phase."""
        members = {t.id for t in self.tasks}
        return [d for d in self.get(task_id).needs if d in members]

    def downstream(self, task_id: str) -> set[str]:
        """Every task of the phase that depends on ``task_id``, directly or not."""
        return {t.id for t in self.tasks if task_id in ancestors(t.id, self.tasks)}


def make_plan(phase: str, phase_tasks: Sequence[Task], selection: Selection | None = None) -> Plan:
    """Order ``phase_tasks`` and apply the selection; raise :class:`SelectionError` on bad ids."""
    selection = selection or Selection()
    ordered = order(phase_tasks)
    ids = [t.id for t in ordered]
    known = ", ".join(ids)

    def check(task_id: str, flag: str) -> str:
        if task_id not in ids:
            raise SelectionError(
                f"{flag} {task_id}: {phase} has no task {task_id}. Its tasks, in run order: {known}"
            )
        return task_id

    if selection.only and (selection.start or selection.stop):
        raise SelectionError("--only cannot be combined with --from/--to; use one or the other")
    if selection.only:
        wanted = {check(t, "--only") for t in selection.only}
        selected = [i for i in ids if i in wanted]
    else:
        first = ids.index(check(selection.start, "--from")) if selection.start else 0
        last = ids.index(check(selection.stop, "--to")) if selection.stop else len(ids) - 1
        if first > last:
            raise SelectionError(
                f"--from {selection.start} comes after --to {selection.stop} in the run order ({known})"
            )
        selected = ids[first : last + 1]
    return Plan(phase=phase, tasks=ordered, selected=selected, selection=selection)
