"""Execute one task's notebook with papermill and read back what happened.

The executed notebook goes through the scrubbing I/O handler (:mod:`helpers.runner.redact`), so
it is never on disk with a secret in it. The outcome carries the papermill error (failing cell,
its source, the exception) and what the notebook reported: step results
(``application/vnd.runbook.steps+json``) and verification checks
(``application/vnd.runbook.checks+json``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.core.checks import MIME as CHECKS_MIME
from helpers.core.steps import MIME as STEPS_MIME
from helpers.runner.ledger import now
from helpers.runner.redact import Redactor, redacted_path, register_io_handler, strip_ansi

log = logging.getLogger("runbook.execute")

INTERRUPTS = ("KeyboardInterrupt",)


@dataclass
class Outcome:
    status: str  # passed / failed / interrupted
    started: str
    finished: str
    duration: float
    error: dict[str, Any] | None = None
    steps: dict[str, int] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _outputs(nb: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []) or []:
            found.append((index, output))
    return found


def _payload(output: dict[str, Any], mime: str) -> dict[str, Any] | None:
    data = output.get("data") or {}
    value = data.get(mime)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def reported(nb: dict[str, Any]) -> tuple[dict[str, int], list[dict[str, Any]], dict[str, Any]]:
    """Step counts by status, the steps that changed (or would), and the checks, from the outputs."""
    counts: dict[str, int] = {}
    changes: list[dict[str, Any]] = []
    passed = failed = 0
    failures: list[dict[str, str]] = []
    for _, output in _outputs(nb):
        steps = _payload(output, STEPS_MIME)
        if steps:
            for step in steps.get("steps", []):
                status = str(step.get("status", ""))
                counts[status] = counts.get(status, 0) + 1
                if status in ("changed", "would change", "failed"):
                    changes.append(
                        {
                            "block": steps.get("title", ""),
                            "name": step.get("name", ""),
                            "status": status,
                            "detail": step.get("detail", ""),
                            "diff": step.get("diff", ""),
                        }
                    )
        checks = _payload(output, CHECKS_MIME)
        if checks:
            for check in checks.get("checks", []):
                if check.get("kind", "check") != "check":
                    continue  # a note: information, not a check
                if check.get("ok"):
                    passed += 1
                else:
                    failed += 1
                    failures.append(
                        {
                            "block": checks.get("title", ""),
                            "name": check.get("name", ""),
                            "detail": check.get("detail", ""),
                            "hint": check.get("hint", ""),
                        }
                    )
    check_summary: dict[str, Any] = {}
    if passed or failed:
        check_summary = {"passed": passed, "failed": failed, "failures": failures}
    return counts, changes, check_summary


def error_record(exc: BaseException, redactor: Redactor) -> dict[str, Any]:
    """The ledger's view of an error: failing cell (index, ``In [n]``, source), exception, traceback."""
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        traceback = strip_ansi("\n".join(exc.traceback or []))
        return redactor.obj(
            {
                "cell_index": exc.cell_index,
                "exec_count": exc.exec_count,
                "source": exc.source,
                "ename": exc.ename,
                "evalue": strip_ansi(str(exc.evalue)),
                "traceback": traceback[-6000:],
            }
        )
    return redactor.obj(
        {
            "cell_index": None,
            "exec_count": None,
            "source": "",
            "ename": type(exc).__name__,
            "evalue": strip_ansi(str(exc)),
            "traceback": "",
        }
    )


def run_notebook(
    source: Path,
    output: Path,
    parameters: dict[str, Any],
    redactor: Redactor,
    engine_name: str = "runbook",
    session: Any = None,
    on_cell: Callable[[int, int, str], None] | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> Outcome:
    """Execute ``source`` into ``output`` (scrubbed); never raises for a notebook failure."""
    import papermill

    from helpers.runner import engine as _engine

    register_io_handler()
    started, began = now(), time.monotonic()
    error: dict[str, Any] | None = None
    status = "passed"
    engine_kwargs: dict[str, Any] = {
        "kernel_env": env or {},
        "kernel_cwd": str(Path(source).resolve().parent),
    }
    if engine_name in _engine.ENGINES:
        engine_kwargs.update(session=session, on_cell=on_cell)
    try:
        papermill.execute_notebook(
            str(source),
            redacted_path(output),
            parameters=parameters,
            engine_name=engine_name,
            progress_bar=False,
            log_output=True,
            execution_timeout=timeout,
            **engine_kwargs,
        )
    except Exception as exc:
        error = error_record(exc, redactor)
        status = "interrupted" if error["ename"] in INTERRUPTS else "failed"
        log.info("%s: %s %s", source.name, error["ename"], error["evalue"][:500])
    finished = now()
    counts: dict[str, int] = {}
    changes: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    if output.is_file():
        try:
            counts, changes, checks = reported(json.loads(output.read_text(encoding="utf-8")))
        except ValueError:
            log.warning("could not read back %s", output)
    warnings: list[str] = []
    state = getattr(session, "last_reset", {}).get("state", {}) if session is not None else {}
    if state.get("leftover_threads"):
        warnings.append(
            "threads left running by an earlier notebook: " + ", ".join(state["leftover_threads"])
        )
    return Outcome(
        status=status,
        started=started,
        finished=finished,
        duration=round(time.monotonic() - began, 3),
        error=error,
        steps=counts,
        changes=changes,
        checks=checks,
        warnings=warnings,
    )
