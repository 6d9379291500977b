"""The chain's decisions without kernels: :class:`helpers.runner.schedule.Scheduler` on plain records.

The graph is the synthetic phase's shape (``helpers.runner.demo``): a chain 1.1 → 1.2 → 1.3, two
independent tasks 1.4 and 1.5 after 1.3, and a join 1.6 that needs both.
"""

from __future__ import annotations

import pytest

from helpers.runner.ledger import TaskRecord
from helpers.runner.schedule import Scheduler

NEEDS = {"1.1": [], "1.2": ["1.1"], "1.3": ["1.2"], "1.4": ["1.3"], "1.5": ["1.3"], "1.6": ["1.4", "1.5"]}


def records(**status: str) -> list[TaskRecord]:
    """One record per task of NEEDS, in run order; ``status`` overrides (``_1_2="passed"``)."""
    given = {key.lstrip("_").replace("_", "."): value for key, value in status.items()}
    return [
        TaskRecord(
            tid,
            f"task {tid}",
            "automated",
            needs,
            f"{tid}.ipynb",
            f"{tid}.ipynb",
            1,
            status=given.get(tid, "pending"),
        )
        for tid, needs in NEEDS.items()
    ]


def scheduler(recs: list[TaskRecord] | None = None, **options: bool) -> Scheduler:
    return Scheduler(recs if recs is not None else records(), NEEDS, **options)


def end(s: Scheduler, tid: str, status: str, ename: str | None = None, **kw: bool) -> None:
    """What the chain does when a worker reports an outcome."""
    s.records[tid].status = status
    s.records[tid].error = {"ename": ename} if ename else None
    s.finish(tid, **kw)


def run_all(s: Scheduler, slots: int, outcome: dict[str, str] | None = None) -> list[list[str]]:
    """Drive ``s`` like the chain, ending each batch's tasks in start order; returns the batches."""
    batches = []
    while True:
        started = s.start(slots - len(s.running))
        if started:
            batches.append(started)
        if s.over():
            return batches
        end(s, s.running[0], (outcome or {}).get(s.running[0], "passed"))


def status(s: Scheduler) -> dict[str, str]:
    return {tid: r.status for tid, r in s.records.items()}


def test_one_slot_runs_the_tasks_one_at_a_time_in_run_order() -> None:
    s = scheduler()
    assert run_all(s, 1) == [["1.1"], ["1.2"], ["1.3"], ["1.4"], ["1.5"], ["1.6"]]
    assert set(status(s).values()) == {"passed"}
    assert s.numbers == {"1.1": 1, "1.2": 2, "1.3": 3, "1.4": 4, "1.5": 5, "1.6": 6}


def test_two_slots_start_the_independent_tasks_together() -> None:
    s = scheduler()
    assert s.start(2) == ["1.1"]  # 1.2 needs 1.1: not ready although a slot is free
    assert s.records["1.1"].status == "running" and s.start(1) == []
    end(s, "1.1", "passed")
    assert s.start(2) == ["1.2"]
    end(s, "1.2", "passed")
    assert s.start(2) == ["1.3"]
    end(s, "1.3", "passed")
    assert s.start(2) == ["1.4", "1.5"]
    end(s, "1.5", "passed")
    assert s.start(1) == []  # 1.6 still waits for 1.4
    end(s, "1.4", "passed")
    assert s.start(2) == ["1.6"]
    assert not s.over()
    end(s, "1.6", "passed")
    assert s.over()


def test_no_free_slot_starts_nothing() -> None:
    s = scheduler()
    assert s.start(0) == [] and s.records["1.1"].status == "pending"


def test_a_failure_stops_the_chain_and_names_the_failed_task() -> None:
    s = scheduler()
    run_all(s, 1, outcome={"1.3": "failed"})
    assert status(s) == {
        "1.1": "passed",
        "1.2": "passed",
        "1.3": "failed",
        "1.4": "not-run",
        "1.5": "not-run",
        "1.6": "not-run",
    }
    assert s.records["1.4"].reason == "not started: the run stopped after 1.3 failed"
    assert s.stopped_by == "1.3"


def test_running_tasks_finish_after_a_failure_but_nothing_new_starts() -> None:
    s = scheduler(records(_1_1="passed", _1_2="passed", _1_3="passed"))
    assert s.start(2) == ["1.4", "1.5"]
    end(s, "1.4", "failed")
    assert s.start(2) == [] and s.records["1.6"].status == "not-run"
    assert not s.over()  # 1.5 still runs
    end(s, "1.5", "passed")
    assert s.over() and s.records["1.5"].status == "passed"


def test_keep_going_runs_the_independent_tasks() -> None:
    s = scheduler(keep_going=True)
    run_all(s, 1, outcome={"1.4": "failed"})
    assert status(s) == {
        "1.1": "passed",
        "1.2": "passed",
        "1.3": "passed",
        "1.4": "failed",
        "1.5": "passed",
        "1.6": "not-run",
    }
    assert s.records["1.6"].reason == "needs 1.4, which failed"


def test_keep_going_names_a_prerequisite_that_did_not_run() -> None:
    s = scheduler(keep_going=True)
    run_all(s, 1, outcome={"1.3": "failed"})
    assert s.records["1.4"].reason == "needs 1.3, which failed"
    assert s.records["1.6"].reason == "needs 1.4, which did not run"


def test_skipped_prerequisites_count_as_done() -> None:
    s = scheduler(records(_1_1="skipped", _1_2="skipped", _1_3="passed", _1_5="skipped"))
    assert s.total == 2
    assert run_all(s, 1) == [["1.4"], ["1.6"]]


def test_plan_mode_runs_every_task_once_its_prerequisites_ended() -> None:
    s = scheduler(keep_going=True, ignore_failed_needs=True)
    run_all(s, 1, outcome={"1.1": "failed", "1.4": "failed"})
    assert status(s) == {
        "1.1": "failed",
        "1.2": "passed",
        "1.3": "passed",
        "1.4": "failed",
        "1.5": "passed",
        "1.6": "passed",
    }


def test_plan_mode_still_waits_for_running_prerequisites() -> None:
    s = scheduler(keep_going=True, ignore_failed_needs=True)
    assert s.start(3) == ["1.1"]
    assert s.start(3) == []


def test_a_prerequisite_out_of_reach_ends_the_run() -> None:
    # 1.3 is running in another attempt's record (e.g. a resumed ledger with a stale state): nothing can start
    s = scheduler(records(_1_1="passed", _1_2="passed", _1_3="running"))
    assert s.start(1) == [] and s.over()
    assert {status(s)[t] for t in ("1.4", "1.5", "1.6")} == {"not-run"}
    assert s.records["1.4"].reason == "its prerequisites did not pass"


def test_only_pending_tasks_are_scheduled() -> None:
    s = scheduler(records(_1_1="passed", _1_2="passed", _1_3="passed", _1_4="passed"))
    assert s.total == 2 and run_all(s, 2) == [["1.5"], ["1.6"]]
    assert s.records["1.4"].status == "passed"


@pytest.mark.parametrize(
    ("ename", "expected"),
    [("KeyboardInterrupt", "interrupted"), ("DeadKernelError", "interrupted"), ("ValueError", "failed")],
)
def test_after_ctrl_c_a_notebook_stopped_by_it_is_interrupted(ename: str, expected: str) -> None:
    s = scheduler()
    s.start(1)
    end(s, "1.1", "failed", ename, after_ctrl_c=True)
    assert s.records["1.1"].status == expected
    assert (s.records["1.1"].reason == "stopped by Ctrl-C") == (expected == "interrupted")


def test_without_ctrl_c_a_keyboard_interrupt_in_a_notebook_is_a_failure() -> None:
    s = scheduler()
    s.start(1)
    end(s, "1.1", "failed", "KeyboardInterrupt")
    assert s.records["1.1"].status == "failed" and s.stopped_by == "1.1"


def test_an_interrupted_outcome_stops_the_chain_with_its_reason() -> None:
    s = scheduler()
    s.start(1)
    end(s, "1.1", "interrupted", "KeyboardInterrupt")
    assert s.records["1.1"].reason == "stopped by Ctrl-C" and s.stopped_by == "1.1"
    assert s.start(1) == [] and s.over() and s.records["1.2"].status == "not-run"


def test_abandon_interrupts_the_running_and_marks_the_rest_not_run() -> None:
    s = scheduler(records(_1_1="passed", _1_2="passed", _1_3="passed"))
    assert s.start(2) == ["1.4", "1.5"]
    end(s, "1.5", "passed", after_ctrl_c=True)  # ended within the grace period
    assert s.abandon() == ["1.4"]
    assert status(s) == {
        "1.1": "passed",
        "1.2": "passed",
        "1.3": "passed",
        "1.4": "interrupted",
        "1.5": "passed",
        "1.6": "not-run",
    }
    assert s.records["1.4"].reason == "stopped by Ctrl-C (its kernel was killed)"
    assert s.records["1.6"].reason == "not started: the run was interrupted (Ctrl-C)"
    assert s.running == [] and s.pending == [] and s.over()
