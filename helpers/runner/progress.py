"""Terminal progress across a phase: task N of M, the current task and cell, then the summary.

On a terminal a live rich display shows the overall bar and one line per running task (with its
current cell); elsewhere (CI logs, pipes) one plain line per task start and finish.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from helpers.runner.chain import Observer
from helpers.runner.ledger import Ledger, TaskRecord
from helpers.runner.redact import Redactor
from helpers.runner.report import ICONS, fmt_duration


class PlainObserver(Observer):
    def __init__(self, console: Console, redactor: Redactor):
        self.console = console
        self.redactor = redactor

    def _say(self, text: str) -> None:
        self.console.print(self.redactor.text(text), markup=False, highlight=False, soft_wrap=True)

    def run_started(self, ledger: Ledger, total: int) -> None:
        what = "planning" if ledger.mode == "plan" else "running"
        self._say(f"{ledger.phase_title}: {what} {total} task(s) → {ledger.run_dir}")

    def task_started(self, record: TaskRecord, number: int, total: int) -> None:
        self._say(f"[{number}/{total}] ▶ {record.id} {record.title} ({record.kind})")

    def task_finished(self, record: TaskRecord, number: int, total: int) -> None:
        extra = f": {record.error.get('ename')}" if record.error else ""
        self._say(
            f"[{number}/{total}] {ICONS.get(record.status, '')} {record.id} {record.title} "
            f"{record.status} in {fmt_duration(record.duration)}{extra}"
        )

    def note(self, message: str) -> None:
        self._say(message)


class RichObserver(PlainObserver):
    def __init__(self, console: Console, redactor: Redactor):
        super().__init__(console, redactor)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.overall: Any = None
        self.rows: dict[str, Any] = {}
        self.titles: dict[str, str] = {}
        self.done = 0
        self.total = 0

    def run_started(self, ledger: Ledger, total: int) -> None:
        super().run_started(ledger, total)
        self.total = total
        self.overall = self.progress.add_task(f"{ledger.phase}: starting", total=max(total, 1))
        self.progress.start()

    def task_started(self, record: TaskRecord, number: int, total: int) -> None:
        self.titles[record.id] = f"{record.id} {record.title}"
        self.progress.update(
            self.overall, description=f"task {number} of {total}: {record.id} {record.title}"
        )
        self.rows[record.id] = self.progress.add_task(f"  {record.id} starting the kernel…", total=None)

    def cell(self, task_id: str, number: int, total: int, first_line: str) -> None:
        row = self.rows.get(task_id)
        if row is not None:
            text = self.redactor.text(first_line.strip())[:60]
            self.progress.update(
                row,
                description=f"  {task_id} cell {number}/{total}: {text}",
                total=total,
                completed=number - 1,
            )

    def task_finished(self, record: TaskRecord, number: int, total: int) -> None:
        row = self.rows.pop(record.id, None)
        if row is not None:
            self.progress.remove_task(row)
        self.done += 1
        self.progress.update(self.overall, completed=self.done)
        super().task_finished(record, number, total)

    def note(self, message: str) -> None:
        self.progress.console.print(self.redactor.text(message), markup=False, highlight=False)

    def run_finished(self, ledger: Ledger) -> None:
        self.progress.stop()


def observer_for(console: Console, redactor: Redactor) -> PlainObserver:
    return RichObserver(console, redactor) if console.is_terminal else PlainObserver(console, redactor)
