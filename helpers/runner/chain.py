"""Run a phase's selected tasks in dependency order, one kernel per worker, and keep the ledger.

The main thread records; worker threads execute (each owns a warm
:class:`~helpers.runner.engine.KernelSession`, started as soon as the worker starts, so the
kernel boots while the runner is still checking parameters). What starts when, what a failure
stops and what Ctrl-C leaves are decided by :class:`~helpers.runner.schedule.Scheduler` (its rules
are written there); this module hands its choices to the workers, writes the ledger at every change
and tells the observer.

Ctrl-C: the running notebooks' kernels are interrupted (SIGINT, like Jupyter's stop button), they
get :data:`INTERRUPT_GRACE` seconds to stop (their partial executed notebooks are kept), then the
ones still running are killed; the ledger is written before :class:`RunInterrupted` is raised.
``runbook resume`` accepts that ledger.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.runner.execute import Outcome, run_notebook
from helpers.runner.kernel import KernelSession
from helpers.runner.ledger import Ledger, TaskRecord
from helpers.runner.plan import Plan
from helpers.runner.redact import Redactor
from helpers.runner.schedule import Scheduler

log = logging.getLogger("runbook.chain")

INTERRUPT_GRACE = 15.0  # seconds the interrupted notebooks get to stop before their kernels are killed


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C: the ledger was written; ``runbook resume`` continues."""


class Observer:
    """What the chain tells as it runs; this one shows nothing (:mod:`helpers.runner.progress` overrides)."""

    def run_started(self, ledger: Ledger, total: int) -> None: ...
    def task_started(self, record: TaskRecord, number: int, total: int) -> None: ...
    def cell(self, task_id: str, number: int, total: int, first_line: str) -> None: ...
    def task_finished(self, record: TaskRecord, number: int, total: int) -> None: ...
    def note(self, message: str) -> None: ...
    def run_finished(self, ledger: Ledger) -> None: ...


@dataclass
class Options:
    keep_going: bool = False
    jobs: int = 1
    engine: str = "runbook"  # "runbook" (warm kernel), "runbook-fresh", or any papermill engine name
    timeout: float | None = None  # per cell, seconds
    ignore_failed_needs: bool = False  # plan mode: every task's dry-run is shown, whatever failed before


@dataclass
class Job:
    task_id: str
    source: Path
    output: Path
    parameters: dict[str, Any]
    env: dict[str, str]


@dataclass
class Worker:
    number: int
    engine: str
    warm_modules: list[str]
    events: queue.Queue
    redactor: Redactor
    timeout: float | None
    inbox: queue.Queue = field(default_factory=queue.Queue)
    session: KernelSession | None = None
    current: str | None = None
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._main, name=f"runbook-worker-{self.number}", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        if self.engine in ("runbook", "runbook-fresh"):
            self.session = KernelSession(fresh=self.engine == "runbook-fresh", warm_modules=self.warm_modules)
            try:
                self.session.start()
            except Exception as exc:
                log.warning("worker %s: kernel did not start yet: %s", self.number, exc)
        try:
            while True:
                job = self.inbox.get()
                if job is None:
                    return
                self.events.put(("started", job.task_id, None))

                def on_cell(number: int, total: int, first: str, _id: str = job.task_id) -> None:
                    self.events.put(("cell", _id, (number, total, first)))

                try:
                    outcome = run_notebook(
                        job.source,
                        job.output,
                        job.parameters,
                        self.redactor,
                        engine_name=self.engine,
                        session=self.session,
                        on_cell=on_cell,
                        env=job.env,
                        timeout=self.timeout,
                    )
                except BaseException as exc:
                    from helpers.runner.execute import error_record
                    from helpers.runner.ledger import now

                    outcome = Outcome("failed", now(), now(), 0.0, error=error_record(exc, self.redactor))
                self.events.put(("done", job.task_id, outcome))
        finally:
            if self.session is not None:
                self.session.shutdown()


class Pool:
    """The workers, each with its kernel. Started early, the kernels boot while the runner prepares."""

    def __init__(
        self, engine: str, jobs: int, warm_modules: list[str], redactor: Redactor, timeout: float | None
    ):
        self.events: queue.Queue = queue.Queue()
        self.workers = [
            Worker(n, engine, list(warm_modules), self.events, redactor, timeout)
            for n in range(1, max(1, jobs) + 1)
        ]
        for worker in self.workers:
            worker.start()

    def wait_launched(self, timeout: float = 30) -> None:
        """Until every worker's kernel process exists (or failed to start): the caller's own imports
        then no longer compete with the kernels' launch for this process's interpreter."""
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            session = worker.session
            while session is None and worker.thread is not None and worker.thread.is_alive():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.005)
                session = worker.session
            if session is not None:
                session.launched.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> list[threading.Thread]:
        """Tell every worker to stop (its kernel shuts down); returns the threads to join."""
        for worker in self.workers:
            worker.inbox.put(None)
        return [w.thread for w in self.workers if w.thread is not None]


def _apply(record: TaskRecord, outcome: Outcome) -> None:
    record.status = outcome.status
    record.started, record.finished, record.duration = outcome.started, outcome.finished, outcome.duration
    record.error = outcome.error
    record.steps, record.changes, record.checks = outcome.steps, outcome.changes, outcome.checks
    record.warnings = outcome.warnings


def run_chain(
    ledger: Ledger,
    plan: Plan,
    jobs_for: Callable[[TaskRecord], Job],
    redactor: Redactor,
    options: Options,
    observer: Observer | None = None,
    warm_modules: list[str] | None = None,
    stopping: list[threading.Thread] | None = None,
    pool: Pool | None = None,
) -> Ledger:
    """Execute every ``pending`` task of ``ledger``; update and save the ledger as things happen.

    The decisions are :class:`~helpers.runner.schedule.Scheduler`'s; this function hands the tasks
    it starts to the workers, records their outcomes and tells the observer. The workers are told to
    stop (and shut their kernels down) when the chain ends; pass a list as ``stopping`` to receive
    their threads and join them later (the kernels then stop while the caller writes the reports),
    otherwise they are joined here.
    """
    ui = observer or Observer()
    records = {r.id: r for r in ledger.tasks}
    schedule = Scheduler(
        (records[t.id] for t in plan.tasks),
        {t.id: plan.needs(t.id) for t in plan.tasks},
        keep_going=options.keep_going,
        ignore_failed_needs=options.ignore_failed_needs,
    )
    total = schedule.total
    if pool is None:
        pool = Pool(
            options.engine, min(options.jobs, total or 1), list(warm_modules or []), redactor, options.timeout
        )
    ui.run_started(ledger, total)
    ledger.save(redactor)
    client_loaded = False
    try:
        while True:
            idle = [w for w in pool.workers if w.current is None]
            for tid, worker in zip(schedule.start(len(idle)), idle, strict=False):
                record = records[tid]
                worker.current = tid
                record.attempt = len(ledger.attempts) or 1
                ledger.save(redactor)
                ui.task_started(record, schedule.numbers[tid], total)
                worker.inbox.put(jobs_for(record))
                log.info("task %s handed to worker %s", tid, worker.number)
            if not client_loaded:  # while the first kernel boots: its notebook needs papermill next
                import papermill  # noqa: F401

                client_loaded = True
            if schedule.over():
                break
            try:
                kind, tid, payload = pool.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "cell":
                ui.cell(tid, *payload)
            elif kind == "done":
                record = _ended(pool, schedule, records[tid], payload)
                ledger.save(redactor)
                ui.task_finished(record, schedule.numbers[tid], total)
    except KeyboardInterrupt:
        _interrupt(ledger, pool, schedule, redactor, ui)
        raise RunInterrupted() from None
    finally:
        threads = pool.close()
        if stopping is not None:
            stopping.extend(threads)
        else:
            for thread in threads:
                thread.join(timeout=20)
    return ledger


def _ended(
    pool: Pool, schedule: Scheduler, record: TaskRecord, outcome: Outcome, after_ctrl_c: bool = False
) -> TaskRecord:
    """A worker reported ``outcome``: record it, free the worker, tell the scheduler."""
    _apply(record, outcome)
    next(w for w in pool.workers if w.current == record.id).current = None
    return schedule.finish(record.id, after_ctrl_c=after_ctrl_c)


def _interrupt(ledger: Ledger, pool: Pool, schedule: Scheduler, redactor: Redactor, ui: Observer) -> None:
    """Ctrl-C: stop the running notebooks, record them as interrupted, the rest as not-run."""
    second = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def again(signum: int, frame: Any) -> None:
        second.set()

    with contextlib.suppress(ValueError):  # ValueError: not the main thread
        signal.signal(signal.SIGINT, again)
    try:
        ui.note(
            "Ctrl-C: interrupting the running notebook(s) and writing the ledger (Ctrl-C again to stop now)"
        )
        for worker in pool.workers:
            if worker.current is not None and worker.session is not None:
                worker.session.interrupt()
        deadline = time.monotonic() + INTERRUPT_GRACE
        while any(w.current for w in pool.workers) and time.monotonic() < deadline and not second.is_set():
            try:
                kind, tid, payload = pool.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if kind == "done":
                record = _ended(pool, schedule, schedule.records[tid], payload, after_ctrl_c=True)
                ui.task_finished(record, schedule.numbers.get(tid, 0), schedule.total)
        killed = set(schedule.abandon())
        for worker in pool.workers:
            if worker.current in killed and worker.session is not None:
                worker.session.kill()
            worker.current = None
        ledger.status = "interrupted"
        ledger.save(redactor)
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, previous)
