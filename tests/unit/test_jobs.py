"""helpers.services.jobs without Redis: queue name lookup, outcomes and hints, the event-loop bridge.

The round trip through Redis and a real worker is in tests/integration/test_e2e.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from helpers.services import jobs


def test_queue_name_prefers_env_then_example_then_default(tmp_path: Path) -> None:
    assert jobs.queue_name_for(tmp_path) == "jobs"
    assert jobs.queue_name_for(None, default="x") == "x"
    (tmp_path / ".env.example").write_text("# the queue\nQUEUE_NAME=from-example\n")
    assert jobs.queue_name_for(tmp_path) == "from-example"
    (tmp_path / ".env").write_text("QUEUE_NAME=\n")  # empty: falls through
    assert jobs.queue_name_for(tmp_path) == "from-example"
    (tmp_path / ".env").write_text('QUEUE_NAME="emails"\n')
    assert jobs.queue_name_for(tmp_path) == "emails"


def outcome(state: str, workers: int = 1, **kw: object) -> jobs.JobOutcome:
    return jobs.JobOutcome(queue="jobs", job_id="7", state=state, elapsed=1.0, workers=workers, **kw)


def test_completed_outcome() -> None:
    done = outcome("completed", returnvalue={"rowId": 3})
    assert done.completed and done.hint() == "" and "returned {'rowId': 3}" in done.summary()


@pytest.mark.parametrize(
    ("state", "workers", "reason", "expected"),
    [
        ("waiting", 0, "", "no worker is connected to queue 'jobs'"),
        ("waiting", 2, "", "stayed 'waiting'"),
        ("failed", 1, "relation does not exist", "the worker ran the job and it failed"),
    ],
)
def test_unfinished_outcomes_say_what_to_do(state: str, workers: int, reason: str, expected: str) -> None:
    result = outcome(state, workers=workers, failed_reason=reason)
    assert not result.completed
    assert expected in result.hint()
    if reason:
        assert reason in result.summary()


def test_run_sync_works_inside_a_running_loop() -> None:
    async def inner() -> int:
        await asyncio.sleep(0)
        return 42

    async def cell() -> int:  # a Jupyter cell runs while the kernel's loop is running
        return jobs.run_sync(inner())

    assert jobs.run_sync(inner()) == 42
    assert asyncio.run(cell()) == 42


def test_worker_connections_are_recognised_in_the_node_and_the_python_spelling() -> None:
    # Node BullMQ 5 names its connections bull:<base64 of the queue>; Python's bullmq bull:<queue>
    assert jobs.worker_client_names("jobs") == ("bull:am9icw==", "bull:jobs")
    assert jobs.worker_client_names("emails", prefix="app") == ("app:ZW1haWxz", "app:emails")


def test_a_missing_worker_is_started_with_the_app_s_own_command_when_known() -> None:
    waiting = outcome("waiting", workers=0)
    assert "start it (`pnpm dev:worker` in the app directory)" in waiting.hint("pnpm dev:worker")
    assert "pnpm worker" not in waiting.hint()  # no command guessed for an app we have not read
    assert "start the app's worker (its script in package.json)" in waiting.hint()
    seen: list[tuple[str, bool, str]] = []
    jobs.check_job(
        lambda name, ok, detail, hint="": seen.append((name, ok, hint)) or ok, waiting, "yarn jobs"
    )
    assert seen[0] == (
        "a worker consumes queue 'jobs'",
        False,
        "start it (`yarn jobs` in the app directory); its QUEUE_NAME must be 'jobs'",
    )
