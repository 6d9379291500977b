"""A task's verification table, for a real run and for a dry run, in one call.

A dry run changes nothing, so there is no new state to read back; what can be verified is the plan itself:
no step changed anything, no step failed, and what would change is listed (:func:`check_plan`). A real run
reads the world back with the task's own checks. Every automated notebook ends the same way::

    verify_run("2.7 project 'demo' with its production environment", results, dry_run,
               lambda check: coolify_setup.check_project(check, client, name, environment, recorded))

``also`` adds checks that a dry run can make besides the plan (2.3: the local files are unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from helpers.core.checks import Checklist, verify
from helpers.core.steps import StepResult


def check_plan(check: Checklist, results: Sequence[StepResult]) -> None:
    """Dry-run verification: nothing changed, nothing failed; what would change is noted."""
    changed = [r.name for r in results if r.status == "changed"]
    failed = [f"{r.name}: {r.detail}" if r.detail else r.name for r in results if r.status == "failed"]
    check(
        "dry run changed nothing",
        not changed,
        ", ".join(changed) or f"{len(results)} steps, none changed anything",
        hint="a step ignored dry_run: report it as a bug",
    )
    check(
        "no step failed",
        not failed,
        "; ".join(failed) or "none",
        hint="fix what the failed step says, then run the dry run again",
    )
    planned = [r.name for r in results if r.status == "would change"]
    check.note("would change", "; ".join(planned) or "nothing to do: everything is in place already")


def verify_run(
    title: str,
    results: Sequence[StepResult],
    dry_run: bool,
    real: Callable[[Checklist], Any],
    *,
    also: Callable[[Checklist], Any] | None = None,
) -> Any:
    """The task's verification table: the plan check in a dry run (plus ``also``), else ``real(check)``.

    Returns what ``real`` returns (``None`` in a dry run). Raises
    :class:`~helpers.core.checks.VerificationFailed` like :func:`~helpers.core.checks.verify`.
    """
    with verify(f"{title} (dry run)" if dry_run else title) as check:
        if not dry_run:
            return real(check)
        check_plan(check, results)
        if also is not None:
            also(check)
    return None
