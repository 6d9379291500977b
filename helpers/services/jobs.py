"""BullMQ from Python: enqueue a job on the app's queue and wait for its outcome.

The Python ``bullmq`` package speaks the same Redis protocol as the Node BullMQ the app uses,
so a job added here is picked up by the app's worker (its own script) like any other. The
functions are synchronous (they run their own event loop, in a thread when called from a
Jupyter cell, whose loop is already running) and never hide a failure: the outcome says
whether the job completed, failed (with the worker's reason) or was still waiting.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dotenv import dotenv_values

from helpers.core.poll import PollTimeout, poll

T = TypeVar("T")
R = TypeVar("R")
DEFAULT_QUEUE = "jobs"
FINAL_STATES = ("completed", "failed")


def on_own_loop(work: Callable[[Callable[[Awaitable[Any]], Any]], R]) -> R:
    """``work(wait)`` with a private event loop, where ``wait(coroutine)`` runs one coroutine to its end (in a
    thread when a loop already runs here: a notebook cell), so synchronous code can await step by step."""

    def target() -> R:
        with asyncio.Runner() as runner:
            return work(runner.run)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return target()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(target).result()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from inside a running event loop (a notebook cell)."""
    return on_own_loop(lambda wait: wait(coro))


def queue_name_for(app_dir: str | Path | None, default: str = DEFAULT_QUEUE) -> str:
    """The app's queue: ``QUEUE_NAME`` from its ``.env`` (else ``.env.example``), else ``default``."""
    if app_dir:
        for name in (".env", ".env.example"):
            path = Path(app_dir) / name
            if path.is_file():
                value = (dotenv_values(path).get("QUEUE_NAME") or "").strip()
                if value:
                    return value
    return default


@dataclass
class JobOutcome:
    queue: str
    job_id: str
    state: str
    elapsed: float
    workers: int
    returnvalue: Any = None
    failed_reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        return self.state == "completed"

    def summary(self) -> str:
        text = f"job {self.job_id} on queue {self.queue!r}: {self.state} after {self.elapsed:.1f} s"
        if self.failed_reason:
            text += f" ({self.failed_reason})"
        elif self.completed:
            text += f", returned {self.returnvalue!r}"
        return text

    def hint(self, worker: str = "") -> str:
        """What to do about a job that did not complete; ``worker`` is the command that starts the app's
        worker, as its ``package.json`` says ("" when unknown)."""
        if self.completed:
            return ""
        if self.state == "failed":
            return "the worker ran the job and it failed: read the worker's log for the reason above"
        if self.workers == 0:
            return (
                f"no worker is connected to queue {self.queue!r}: {_start_worker(worker)} and check that "
                "its QUEUE_NAME and REDIS_URL match"
            )
        return (
            f"{self.workers} worker connection(s) open but the job stayed {self.state!r}: "
            "check the worker's log "
            "and that it consumes this queue"
        )


def worker_client_names(queue_name: str, prefix: str = "bull") -> tuple[str, ...]:
    """The names BullMQ workers give their Redis connections for this queue.

    Node BullMQ 5 names them ``<prefix>:<base64 of the queue name>`` (plus ``:w:<worker name>``); the Python
    package names them ``<prefix>:<queue name>`` and only recognises its own spelling
    (``Queue.get_workers_count`` sees no Node worker), so both are matched here.
    """
    encoded = base64.b64encode(queue_name.encode()).decode()
    return (f"{prefix}:{encoded}", f"{prefix}:{queue_name}")


async def _count_workers(queue: Any, queue_name: str, prefix: str) -> int:
    names = worker_client_names(queue_name, prefix)
    clients = await queue.client.client_list()
    return sum(
        1
        for c in clients
        if c.get("name") in names or str(c.get("name", "")).startswith(tuple(f"{n}:w:" for n in names))
    )


def _enqueue_and_wait(
    wait: Callable[[Awaitable[Any]], Any],
    redis_url: str,
    queue_name: str,
    name: str,
    data: dict[str, Any],
    timeout: float,
    prefix: str,
    remove: bool,
) -> JobOutcome:
    from bullmq import Job, Queue

    queue = Queue(queue_name, {"connection": redis_url, "prefix": prefix})
    try:
        workers = wait(_count_workers(queue, queue_name, prefix))
        job = wait(queue.add(name, data, {"attempts": 1}))
        job_id = str(job.id)
        started = time.monotonic()
        try:
            state = poll(
                lambda: wait(queue.getJobState(job_id)),
                until=lambda s: s in FINAL_STATES,
                timeout=timeout,
                interval=0.2,
                what=f"job {job_id} to complete or fail",
            )
        except PollTimeout as exc:
            state = str(exc.last or "unknown")
        elapsed = time.monotonic() - started
        if state not in FINAL_STATES:
            workers = max(workers, wait(_count_workers(queue, queue_name, prefix)))
        stored = wait(Job.fromId(queue, job_id))
        outcome = JobOutcome(
            queue=queue_name,
            job_id=job_id,
            state=state,
            elapsed=elapsed,
            workers=workers,
            data=data,
            returnvalue=getattr(stored, "returnvalue", None),
            failed_reason=str(getattr(stored, "failedReason", "") or ""),
        )
        if remove and stored is not None:
            if state in FINAL_STATES:
                wait(stored.remove())
            else:  # never leave a stray job for a worker that starts later
                wait(queue.remove(job_id))
        return outcome
    finally:
        wait(queue.close())


def enqueue_and_wait(
    redis_url: str,
    queue_name: str = DEFAULT_QUEUE,
    name: str = "runbook-e2e",
    data: dict[str, Any] | None = None,
    timeout: float = 30.0,
    prefix: str = "bull",
    remove: bool = True,
) -> JobOutcome:
    """Add a job and wait up to ``timeout`` seconds for ``completed`` or ``failed``.

    ``data`` gets a unique ``probe`` id (the worker's row can be found by it). The job is
    removed from Redis afterwards unless ``remove=False``; a job that nobody picked up is
    removed too, so no worker processes it later by surprise.
    """
    payload = {"probe": uuid.uuid4().hex, "sentAt": time.time(), **(data or {})}
    return on_own_loop(
        lambda wait: _enqueue_and_wait(wait, redis_url, queue_name, name, payload, timeout, prefix, remove)
    )


async def _workers(redis_url: str, queue_name: str, prefix: str) -> int:
    from bullmq import Queue

    queue = Queue(queue_name, {"connection": redis_url, "prefix": prefix})
    try:
        return await _count_workers(queue, queue_name, prefix)
    finally:
        await queue.close()


def worker_count(redis_url: str, queue_name: str = DEFAULT_QUEUE, prefix: str = "bull") -> int:
    """How many BullMQ workers are connected to the queue right now."""
    return run_sync(_workers(redis_url, queue_name, prefix))


def _start_worker(worker: str) -> str:
    if worker:
        return f"start it (`{worker}` in the app directory)"
    return "start the app's worker (its script in package.json)"


def check_job(check: Any, outcome: JobOutcome, worker: str = "") -> bool:
    """Task 1.15: the job went through the app's worker and completed. ``worker``: the command that
    starts it, named in the hints."""
    check(
        f"a worker consumes queue {outcome.queue!r}",
        outcome.workers > 0 or outcome.completed,
        f"{outcome.workers} worker connection(s)",
        hint=f"{_start_worker(worker)}; its QUEUE_NAME must be {outcome.queue!r}",
    )
    return check(
        f"job {outcome.job_id} completed", outcome.completed, outcome.summary(), hint=outcome.hint(worker)
    )


def worker_row(database_url: str, table: str, outcome: JobOutcome) -> dict[str, Any] | None:
    """The row the worker wrote for this job (``rowId`` of its return value), read on a new connection."""
    import psycopg
    from psycopg import sql

    row_id = outcome.returnvalue.get("rowId") if isinstance(outcome.returnvalue, dict) else None
    if row_id is None:
        raise LookupError(f"the job returned {outcome.returnvalue!r}, without the rowId of the row it wrote")
    query = sql.SQL("SELECT id, job_id, payload FROM {} WHERE id = %s").format(sql.Identifier(table))
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        found = conn.execute(query, (row_id,)).fetchone()
    if found is None:
        return None
    return {"id": found[0], "job_id": found[1], "payload": found[2]}


def check_read_back(check: Any, database_url: str, outcome: JobOutcome, table: str = "job_results") -> None:
    """Task 1.15: the data the worker wrote through PostgreSQL is there, with this job's unique probe."""
    if not outcome.completed:
        check(
            f"the worker's row in {table} read back",
            False,
            "the job did not complete",
            hint="fix the job first (table above)",
        )
        return
    try:
        row = worker_row(database_url, table, outcome)
    except Exception as exc:  # every failure is a row in the table
        from helpers.core.secrets import scrub

        check(
            f"the worker's row in {table} read back",
            False,
            scrub(f"{type(exc).__name__}: {exc}"),
            hint=f"the worker must write its result to {table} and return its rowId; "
            "check DATABASE_URL in the app's .env",
        )
        return
    probe_id = outcome.data.get("probe")
    same = (
        row is not None
        and row["job_id"] == outcome.job_id
        and (row["payload"] or {}).get("probe") == probe_id
    )
    check(
        f"the worker's row in {table} read back",
        same,
        f"row {row['id']}: job {row['job_id']}, probe {(row['payload'] or {}).get('probe')}"
        if row
        else f"no row with id {outcome.returnvalue.get('rowId')}",
        hint="the row is missing or belongs to another job: is the worker writing to the same database?",
    )


def table_exists(database_url: str, table: str) -> bool:
    """The table is in the database (on the search path), read on a new connection."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def check_table(check: Any, database_url: str, table: str = "job_results") -> bool:
    """Task 1.15: the migrations created the table the worker writes into."""
    try:
        found = table_exists(database_url, table)
        detail = "there" if found else "missing"
    except Exception as exc:  # a row in the table, not a traceback
        from helpers.core.secrets import scrub

        found, detail = False, scrub(f"{type(exc).__name__}: {exc}")
    return check(
        f"table {table} exists (the app's migrations)",
        found,
        detail,
        hint="apply the app's migrations (its db:migrate script); result_table must name the worker's table",
    )
