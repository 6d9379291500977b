"""The run ledger: ``ledger.json`` in the run folder, the machine-readable record of a run.

It is rewritten atomically (and scrubbed) at every change of state, so whatever stops the runner
(a failure, Ctrl-C, a killed process) leaves a ledger that ``runbook resume`` accepts: a task
found ``running`` is treated as interrupted.

Task statuses: ``pending`` (not started yet), ``running``, ``passed``, ``failed``,
``interrupted`` (stopped by Ctrl-C), ``skipped`` (not selected, or not safe to run: the reason
says which) and ``not-run`` (a prerequisite failed, or the run stopped before it).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helpers.core.settings import env
from helpers.runner.redact import Redactor, write_atomic

SCHEMA = 1
LEDGER = "ledger.json"
STATUSES = ("pending", "running", "passed", "failed", "interrupted", "skipped", "not-run")
DONE_OK = ("passed", "skipped")
BROKEN = ("failed", "interrupted", "not-run")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class TaskRecord:
    id: str
    title: str
    kind: str
    needs: list[str]
    notebook: str  # source notebook, relative to the project root
    output: str  # executed notebook, relative to the run folder
    group: int  # parallel group (1 = first)
    selected: bool = True
    status: str = "pending"
    reason: str = ""
    attempt: int = 0
    started: str | None = None
    finished: str | None = None
    duration: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    error: dict[str, Any] | None = None
    steps: dict[str, int] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    troubleshooting: str = ""
    previous: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Ledger:
    run_id: str
    phase: str
    phase_title: str
    mode: str  # "run" or "plan"
    dry_run: bool
    root: str
    registry: str
    options: dict[str, Any]
    parameters: dict[str, Any]
    tasks: list[TaskRecord]
    status: str = "running"
    created: str = field(default_factory=now)
    updated: str = field(default_factory=now)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    schema: int = SCHEMA
    path: Path | None = field(default=None, repr=False, compare=False)

    def task(self, task_id: str) -> TaskRecord:
        for record in self.tasks:
            if record.id == task_id:
                return record
        raise KeyError(task_id)

    @property
    def run_dir(self) -> Path:
        assert self.path is not None
        return self.path.parent

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self.tasks:
            out[record.status] = out.get(record.status, 0) + 1
        return out

    def overall(self) -> str:
        """``passed``, ``failed`` or ``interrupted``, from the selected tasks."""
        statuses = {r.status for r in self.tasks if r.selected}
        if "interrupted" in statuses:
            return "interrupted"
        if statuses & {"failed", "not-run", "pending", "running"}:
            return "failed"
        return "passed"

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        data["tasks"] = [asdict(r) for r in self.tasks]
        return data

    def save(self, redactor: Redactor | None = None) -> Path:
        assert self.path is not None, "ledger has no path"
        self.updated = now()
        data = self.to_json()
        if redactor is not None:
            data = redactor.obj(data)
        write_atomic(self.path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return self.path

    @classmethod
    def load(cls, path: Path) -> Ledger:
        path = Path(path)
        if path.is_dir():
            path = path / LEDGER
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LedgerError(f"no ledger at {path}: not a run folder") from None
        except ValueError as exc:
            raise LedgerError(f"{path} is not valid JSON ({exc}); the run cannot be resumed") from exc
        if data.get("schema") != SCHEMA:
            raise LedgerError(f"{path} has ledger schema {data.get('schema')}, this runner reads {SCHEMA}")
        names = {f.name for f in fields(cls)} - {"path", "tasks"}
        ledger = cls(
            tasks=[TaskRecord.from_json(t) for t in data["tasks"]],
            **{k: v for k, v in data.items() if k in names},
        )
        ledger.path = path
        return ledger


class LedgerError(ValueError):
    pass


def runs_dir(root: Path) -> Path:
    """Where run folders go: ``RUNBOOK_RUNS_DIR``, else ``<project root>/runs``."""
    return env.runs_dir or Path(root) / "runs"


def new_run_dir(base: Path, phase: str, suffix: str = "") -> Path:
    """``<base>/<UTC timestamp>-<phase>[-suffix]/``, created, unique."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{phase}{'-' + suffix if suffix else ''}"
    base.mkdir(parents=True, exist_ok=True)
    candidate, n = base / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = base / f"{name}-{n}"


LAST = "LAST"


def remember(base: Path, run_dir: Path) -> None:
    """Record ``run_dir`` as the last run (``runbook resume`` without a folder uses it)."""
    base.mkdir(parents=True, exist_ok=True)
    write_atomic(base / LAST, str(Path(run_dir).resolve()) + "\n")


def _ledgers(base: Path) -> list[Ledger]:
    found = []
    for path in sorted(base.glob(f"*/{LEDGER}")):
        try:
            found.append(Ledger.load(path))
        except LedgerError:
            continue
    return found


def last_run(base: Path, phase: str | None = None, modes: tuple[str, ...] = ("run",)) -> Ledger | None:
    """The most recent run (by creation time) under ``base``, or the one ``LAST`` points to."""
    candidates = [
        led for led in _ledgers(base) if led.mode in modes and (phase is None or led.phase == phase)
    ]
    pointer = base / LAST
    if pointer.is_file():
        target = Path(pointer.read_text(encoding="utf-8").strip())
        if (target / LEDGER).is_file() and not any(led.run_dir.resolve() == target for led in candidates):
            try:
                led = Ledger.load(target)
            except LedgerError:
                led = None
            if led is not None and led.mode in modes and (phase is None or led.phase == phase):
                candidates.append(led)
    if not candidates:
        return None
    return max(candidates, key=lambda led: (led.created, led.run_id))


_SLUG = re.compile(r"[^a-z0-9]+")


def troubleshooting_anchor(task_id: str) -> str:
    """The stable anchor of a task's section on the troubleshooting page: ``task-1-4``."""
    return "task-" + _SLUG.sub("-", task_id.lower()).strip("-")
