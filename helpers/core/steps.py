"""Results of idempotent steps, in Ansible's vocabulary, with Terraform's plan mode.

Every action the runbook takes returns a :class:`StepResult`:

* ``ok``: the thing was already as wanted; nothing was done ("already done");
* ``changed``: the step changed something (the ``diff`` says what);
* ``would change``: dry-run / plan mode; nothing was done, ``diff`` shows what would be;
* ``skipped``: not applicable here (the detail says why);
* ``failed``: the step could not be done (the detail says why and what to do).

A second run of a task must report only ``ok`` / ``skipped``: the idempotency
tests read the results that :func:`report` embeds in the notebook's output.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Literal

from helpers.core.display import show_table, show_text

Status = Literal["ok", "changed", "would change", "skipped", "failed"]
STATUSES: tuple[str, ...] = ("ok", "changed", "would change", "skipped", "failed")
MIME = "application/vnd.runbook.steps+json"
ICONS = {
    "ok": "🟢 ok",
    "changed": "🟡 changed",
    "would change": "🔵 would change",
    "skipped": "⚪ skipped",
    "failed": "🔴 failed",
}


@dataclass(frozen=True)
class StepResult:
    name: str
    status: Status
    detail: str = ""
    diff: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown step status {self.status!r}; use one of {STATUSES}")

    @property
    def changed(self) -> bool:
        return self.status in ("changed", "would change")


def ok(name: str, detail: str = "already done") -> StepResult:
    return StepResult(name, "ok", detail)


def changed(name: str, detail: str = "", diff: str = "", dry_run: bool = False) -> StepResult:
    """A step that changes something; in dry-run it reports ``would change`` instead."""
    return StepResult(name, "would change" if dry_run else "changed", detail, diff)


def skipped(name: str, detail: str) -> StepResult:
    return StepResult(name, "skipped", detail)


def failed(name: str, detail: str) -> StepResult:
    return StepResult(name, "failed", detail)


class StepFailed(RuntimeError):
    """Raised by :func:`report` when a step failed; carries the results."""

    def __init__(self, results: list[StepResult]):
        self.results = results
        bad = [r for r in results if r.status == "failed"]
        super().__init__("; ".join(f"{r.name}: {r.detail}" for r in bad))


def report(
    results: StepResult | Iterable[StepResult], title: str = "Steps", show_diffs: bool = True
) -> list[StepResult]:
    """Show the results as a table (and their diffs); raise :class:`StepFailed` if one failed."""
    items = [results] if isinstance(results, StepResult) else list(results)
    payload = {MIME: {"title": title, "steps": [asdict(r) for r in items]}}
    show_table(
        ("status", "step", "detail"),
        [(ICONS[r.status], r.name, r.detail) for r in items],
        title=title,
        extra=payload,
    )
    if show_diffs:
        for r in items:
            if r.diff:
                show_text(r.diff, title=f"diff: {r.name}", language="diff")
    if any(r.status == "failed" for r in items):
        raise StepFailed(items)
    return items
