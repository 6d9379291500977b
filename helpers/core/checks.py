"""Verification tables that fail loudly.

A verification cell reads the real state of the world and records each check;
on leaving the block the table is shown (✅/❌) and, if any check failed, a
:class:`VerificationFailed` is raised, so papermill and nbval stop right there.

>>> with verify("Docker is ready") as check:          # doctest: +SKIP
...     check("engine answers", engine.ok, engine.version)
...     check("4 GB free", free_gb >= 4, f"{free_gb:.1f} GB", hint="prune images")
...     check.note("data root", "/var/lib/docker")

A *note* (ℹ️) is information shown in the table that is not a check: it never fails and never counts
as one. Anything that can only be true belongs in a note, so that every ✅ is a check that could have
been ❌.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from helpers.core.display import show_table

MIME = "application/vnd.runbook.checks+json"


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    hint: str = ""
    kind: str = "check"  # or "note": information, never a failure

    @property
    def icon(self) -> str:
        return "ℹ️" if self.kind == "note" else "✅" if self.ok else "❌"


class VerificationFailed(AssertionError):
    """One or more checks failed. ``failures`` lists them; the message says what to do next."""

    def __init__(self, title: str, failures: list[CheckResult], total: int):
        self.title = title
        self.failures = failures
        lines = [f"{title}: {len(failures)} of {total} checks failed"]
        for f in failures:
            line = f"  ❌ {f.name}"
            if f.detail:
                line += f": {f.detail}"
            if f.hint:
                line += f"\n     next step: {f.hint}"
            lines.append(line)
        super().__init__("\n".join(lines))


@dataclass
class Checklist:
    title: str
    results: list[CheckResult] = field(default_factory=list)

    def __call__(self, name: str, ok: Any, detail: Any = "", hint: str = "") -> bool:
        """Record one check. ``ok`` is taken for its truth value."""
        result = CheckResult(name=name, ok=bool(ok), detail=str(detail), hint=hint if not ok else "")
        self.results.append(result)
        return result.ok

    def note(self, name: str, detail: Any = "") -> None:
        """Record information that is not a check (a version, a choice, a warning to read)."""
        self.results.append(CheckResult(name=name, ok=True, detail=str(detail), kind="note"))

    def call(self, name: str, probe: Callable[[], Any], hint: str = "") -> Any:
        """Run ``probe``; the check passes if it returns a truthy value without raising.

        The probe's return value is shown as the detail and returned.
        """
        try:
            value = probe()
        except Exception as exc:  # every failure becomes a visible row
            self(name, False, f"{type(exc).__name__}: {exc}", hint)
            return None
        self(name, value, "" if value is True else value, hint)
        return value

    @property
    def checks(self) -> list[CheckResult]:
        return [r for r in self.results if r.kind == "check"]

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.checks if not r.ok]

    def show(self) -> None:
        rows = [(r.icon, r.name, r.detail) for r in self.results]
        payload = {MIME: {"title": self.title, "checks": [r.__dict__ for r in self.results]}}
        show_table(("", "check", "detail"), rows, title=self.title, extra=payload)

    def raise_on_failure(self) -> None:
        if not self.checks:
            raise VerificationFailed(self.title, [CheckResult("no check was recorded", False)], 0)
        if self.failures:
            raise VerificationFailed(self.title, self.failures, len(self.checks))


@contextmanager
def verify(title: str) -> Iterator[Checklist]:
    """Collect checks, show them as a table, raise :class:`VerificationFailed` if any failed.

    An exception inside the block is recorded as a failed check (so the table
    still shows what passed before it) and re-raised as a verification failure.
    """
    checklist = Checklist(title)
    try:
        yield checklist
    except VerificationFailed:
        raise
    except Exception as exc:
        checklist(f"(block raised {type(exc).__name__})", False, str(exc))
        checklist.show()
        raise VerificationFailed(title, checklist.failures, len(checklist.checks)) from exc
    checklist.show()
    checklist.raise_on_failure()
