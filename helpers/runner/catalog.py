"""Where the runner's tasks come from: the project's registry, or a registry file of the same shape.

The runner never lists tasks itself. By default it reads :mod:`helpers.core.tasks`; every function
below takes a :class:`Catalog`, so tests (and anyone trying the runner on their own notebooks)
can hand it a small registry file instead: ``RUNBOOK_REGISTRY=/path/tasks.yaml`` (notebook paths
are then relative to that file's folder, or to ``RUNBOOK_PROJECT_ROOT`` when set).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from helpers.core import tasks as registry
from helpers.core.paths import PROJECT_ROOT
from helpers.core.settings import env
from helpers.core.tasks import Phase, Task


@dataclass(frozen=True)
class Catalog:
    """A set of phases and tasks, plus the folder their notebook paths are relative to."""

    root: Path
    phases: dict[str, Phase]
    tasks: tuple[Task, ...] = field(default_factory=tuple)
    source: str = "helpers/core/tasks.yaml"

    def get(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == str(task_id):
                return task
        raise registry.UnknownTask(task_id)

    def in_phase(self, phase: str) -> list[Task]:
        if phase not in self.phases:
            raise KeyError(f"unknown phase {phase!r}; choose one of {', '.join(self.phases)}")
        return sorted((t for t in self.tasks if t.phase == phase), key=lambda t: t.key)

    def notebook(self, task: Task) -> Path:
        """Absolute path of the task's source notebook."""
        return self.root / task.notebook


def from_registry() -> Catalog:
    """The project's own registry (``helpers/core/tasks.yaml``)."""
    return Catalog(
        root=PROJECT_ROOT,
        phases=registry.phases(),
        tasks=tuple(registry.all_tasks()),
        source=str(registry.REGISTRY.relative_to(PROJECT_ROOT)),
    )


def from_file(path: Path, root: Path | None = None) -> Catalog:
    """A registry file with the same schema as ``helpers/core/tasks.yaml``."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    phases, tasks = registry.parse(data, str(path))
    return Catalog(
        root=Path(root) if root else Path(path).resolve().parent,
        phases=phases,
        tasks=tuple(sorted(tasks.values(), key=lambda t: t.key)),
        source=str(path),
    )


def default() -> Catalog:
    """``RUNBOOK_REGISTRY`` when set, else the project's registry."""
    path = env.registry
    if path:
        root = env.project_root
        return from_file(Path(path), Path(root) if root else None)
    return from_registry()
