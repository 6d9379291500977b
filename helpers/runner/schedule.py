"""The chain's decisions, without kernels or threads: what may start, what can no longer run, when it ends.

:class:`Scheduler` works on the ledger's :class:`~helpers.runner.ledger.TaskRecord` objects and
changes only their ``status`` and ``reason``; :mod:`helpers.runner.chain` runs the notebooks, keeps
the ledger and asks the scheduler at every turn. The rules:

* A task starts when its prerequisites inside the phase are done (``passed`` or ``skipped``), in run
  order: with one slot (``jobs=1``) the tasks run one at a time in the order ``runbook plan`` prints;
  with N slots up to N ready tasks run at once.
* A failure (or interruption) stops the chain: pending tasks become ``not-run`` and their reason names
  the failed task; tasks already running finish. With ``keep_going`` only the tasks that need a broken
  one (failed, interrupted or not-run) become ``not-run``; the others still run.
* Plan mode (``ignore_failed_needs``): every task runs once its prerequisites have ended, whatever
  their status, so every dry-run is shown.
* When nothing runs and nothing can start, the run is over: what is still pending becomes ``not-run``.
* Ctrl-C: a task that ends with ``KeyboardInterrupt`` or a dead kernel is ``interrupted``; when the
  grace period is over, the tasks still running are ``interrupted`` (their kernels are killed) and
  the pending ones ``not-run``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from helpers.runner.ledger import BROKEN, DONE_OK, TaskRecord

STOPPED = ("failed", "interrupted")  # an ended task with one of these stops the chain
CTRL_C_ERRORS = ("KeyboardInterrupt", "DeadKernelError")  # how a notebook ends when Ctrl-C stopped it


class Scheduler:
    """Which pending tasks may start now, and which can no longer run. No I/O, no threads."""

    def __init__(
        self,
        records: Iterable[TaskRecord],
        needs: Mapping[str, Sequence[str]],
        *,
        keep_going: bool = False,
        ignore_failed_needs: bool = False,
    ) -> None:
        """``records`` in run order; ``needs``: each task's direct prerequisites inside the phase."""
        self.records = {r.id: r for r in records}
        self.needs = {tid: tuple(needs.get(tid, ())) for tid in self.records}
        self.keep_going = keep_going
        self.ignore_failed_needs = ignore_failed_needs
        self.pending = [tid for tid, r in self.records.items() if r.status == "pending"]
        self.total = len(self.pending)
        self.running: list[str] = []
        self.numbers: dict[str, int] = {}  # task id -> its start number (1 = first started)
        self.stopped_by: str | None = None

    # -- starting ----------------------------------------------------------------------------------

    def start(self, slots: int) -> list[str]:
        """Up to ``slots`` tasks that may start now, in run order; they are marked ``running``."""
        self._settle()
        chosen = [tid for tid in self.pending if self._ready(tid)][: max(0, slots)]
        for tid in chosen:
            self.pending.remove(tid)
            self.running.append(tid)
            self.numbers[tid] = len(self.numbers) + 1
            record = self.records[tid]
            record.status, record.reason = "running", ""
        return chosen

    def _ready(self, tid: str) -> bool:
        statuses = [self.records[d].status for d in self.needs[tid]]
        if self.ignore_failed_needs:
            return all(s not in ("pending", "running") for s in statuses)
        return all(s in DONE_OK for s in statuses)

    def _settle(self) -> None:
        """Pending tasks that can no longer run become ``not-run``."""
        for tid in list(self.pending):
            record = self.records[tid]
            if self.stopped_by and not self.keep_going:
                record.status = "not-run"
                record.reason = f"not started: the run stopped after {self.stopped_by} failed"
            elif not self.ignore_failed_needs:
                broken = [d for d in self.needs[tid] if self.records[d].status in BROKEN]
                if broken:
                    what = self.records[broken[0]].status
                    record.status = "not-run"
                    record.reason = f"needs {broken[0]}, which {'did not run' if what == 'not-run' else what}"
            if record.status != "pending":
                self.pending.remove(tid)

    # -- ending ------------------------------------------------------------------------------------

    def finish(self, tid: str, *, after_ctrl_c: bool = False) -> TaskRecord:
        """``tid`` ended; its record already holds the outcome's status (and error)."""
        record = self.records[tid]
        if after_ctrl_c and record.status == "failed" and (record.error or {}).get("ename") in CTRL_C_ERRORS:
            record.status = "interrupted"
        if record.status == "interrupted":
            record.reason = "stopped by Ctrl-C"
        self.running.remove(tid)
        if record.status in STOPPED and self.stopped_by is None:
            self.stopped_by = tid
        return record

    def over(self) -> bool:
        """True when nothing runs (call after :meth:`start`); what is still pending becomes ``not-run``."""
        if self.running:
            return False
        for tid in self.pending:  # nothing runs and nothing could start: prerequisites out of reach
            record = self.records[tid]
            record.status, record.reason = "not-run", "its prerequisites did not pass"
        self.pending.clear()
        return True

    def abandon(self) -> list[str]:
        """Ctrl-C, grace period over: running tasks are ``interrupted`` (returned: kill their kernels),
        pending ones ``not-run``."""
        killed = list(self.running)
        for tid in killed:
            record = self.records[tid]
            record.status, record.reason = "interrupted", "stopped by Ctrl-C (its kernel was killed)"
        self.running.clear()
        for tid in self.pending:
            record = self.records[tid]
            record.status, record.reason = "not-run", "not started: the run was interrupted (Ctrl-C)"
        self.pending.clear()
        return killed
