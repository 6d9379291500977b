"""GitHub Actions runs of the deploy workflow (tasks 2.17 and 2.18), with PyGithub.

:func:`latest_run` summarises the newest run on a branch (2.18 checks it succeeded); :func:`wait_for_run`
waits for one run to complete. The client and its errors are in :mod:`helpers.clients.github`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from helpers.app import workflow
from helpers.clients.github import calling, iso
from helpers.core import poll


def run_summary(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "event": run.event,
        "branch": run.head_branch,
        "sha": (run.head_sha or "")[:12],
        "status": run.status,
        "conclusion": run.conclusion,
        "created_at": iso(run.created_at),
        "url": run.html_url,
    }


def latest_run(
    repo: Any, workflow_file: str = workflow.WORKFLOW_FILE, branch: str = "main"
) -> dict[str, Any] | None:
    """The newest run of the workflow on ``branch`` (any event), summarised; None when it never ran."""
    with calling(f"reading the runs of {workflow_file}", repo.full_name):
        wf = repo.get_workflow(workflow_file)
        for run in wf.get_runs(branch=branch):
            return run_summary(run)
    return None


def wait_for_run(
    repo: Any,
    run_id: int,
    timeout: float = 1800,
    interval: float = 15,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll a run until it is completed; returns its summary (raises TimeoutError with where it stands)."""

    def read() -> Any:
        with calling(f"reading workflow run {run_id}", repo.full_name):
            return repo.get_workflow_run(run_id)

    def explain(last: Any) -> str:
        return f"workflow run {run_id} is still {last.status} after {timeout:.0f}s; see {last.html_url}"

    run = poll.poll(
        read,
        until=lambda run: run.status == "completed",
        timeout=timeout,
        interval=interval,
        what=f"workflow run {run_id} to complete",
        explain=explain,
        sleep=sleep,
        clock=clock,
    )
    return run_summary(run)
