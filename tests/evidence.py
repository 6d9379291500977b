"""What the CI log must show of the real things a test did: the images built, the Node worker's jobs.

pytest captures a passing test's output, so a test that wants a line in the log records it here
(:func:`record`), and the session's summary prints every record under its title. Under pytest-xdist each
worker hands its records to the controller (tests/conftest.py wires the hooks).
"""

from __future__ import annotations

from typing import Any

KEY = "runbook_evidence"
_RECORDS: list[tuple[str, list[str]]] = []


def record(title: str, lines: list[str]) -> None:
    """Keep ``lines`` for the summary, under ``title`` (the test's own words)."""
    _RECORDS.append((title, [str(line) for line in lines]))


def hand_over(config: Any) -> None:
    """In a pytest-xdist worker: put this worker's records where the controller reads them."""
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput[KEY] = [[title, lines] for title, lines in _RECORDS]


def take_from(node: Any) -> None:
    """In pytest-xdist's controller: add a finished worker's records."""
    for title, lines in (getattr(node, "workeroutput", None) or {}).get(KEY, []):
        _RECORDS.append((title, list(lines)))


def write(terminalreporter: Any) -> None:
    if not _RECORDS:
        return
    terminalreporter.section("what the tests built and ran (evidence)")
    for title, lines in _RECORDS:
        terminalreporter.write_line(title)
        for line in lines:
            terminalreporter.write_line(f"  {line}")
