"""Every exchange with a stand-in, in every test, held to the vendor's description (issue 12).

``tests/conftest.py`` imports the fixture and the summary hook from here. After each test, the exchanges
logged by the stand-ins the test talked to (in-process :class:`~helpers.rehearse.base.StandIn` objects and
:class:`~helpers.rehearse.base.StandInProcess` processes, see their ``instances``) are validated with
:func:`helpers.rehearse.contracts.check`; a violation that ``contract-allowlist.yaml`` does not cover fails
the test, naming the operation and the field. Stand-in tests send invalid requests on purpose: a request
the description forbids and the stand-in refused (4xx) counts as ``rejected``; its answer is validated.

Under pytest-xdist each worker validates its own tests' exchanges and hands its counts to the controller
(``workeroutput``), which adds them up and prints the one summary.

Without the descriptions (``RUNBOOK_REFS_DIR``, default ``../shared/refs``) nothing is validated and the
summary says why; with ``RUNBOOK_REQUIRE_REFS=1`` (CI) a test that used a stand-in fails instead.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from helpers.rehearse import contracts
from helpers.rehearse.base import StandIn, StandInProcess

_SEEN: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # entries already validated
TOTAL = contracts.Report()
_MISSING: list[str] = []


def _new_entries() -> list[contracts.LoggedRequest]:
    fresh: list[contracts.LoggedRequest] = []
    for standin in list(StandIn.instances):
        with standin.lock:
            log = list(standin.log)
        fresh += log[_SEEN.get(standin, 0) :]
        _SEEN[standin] = len(log)
    for proc in list(StandInProcess.instances):
        raw = proc.read_log() if proc.proc is not None else proc.final_log
        fresh += contracts.exchanges(raw[_SEEN.get(proc, 0) :])
        _SEEN[proc] = len(raw)
    return [e for e in fresh if e.standin in contracts.VENDORS]


@pytest.fixture(autouse=True)
def stand_in_contracts() -> Iterator[None]:
    """Validate what the test's stand-ins exchanged (see the module docstring)."""
    _new_entries()  # what earlier tests or module fixtures logged is theirs
    yield
    entries = _new_entries()
    if not entries:
        return
    vendors = {e.standin for e in entries}
    problem = contracts.refs_problem(vendors)
    if problem is not None:
        if contracts.refs_required():
            pytest.fail(f"{contracts.REQUIRE_ENV}=1 but {problem}")
        _MISSING.append(problem)
        return
    report = contracts.check(entries, strict_requests=False)
    TOTAL.merge(report)
    failures = report.failure_lines()
    if failures:
        pytest.fail(
            "the stand-ins' exchanges break the vendors' descriptions (fix the stand-in, or list a defect of "
            f"the description in {contracts.ALLOWLIST.name} with its evidence):\n  " + "\n  ".join(failures),
            pytrace=False,
        )


_FROM_WORKERS: list[int] = []  # exchanges validated in pytest-xdist's workers (counted by the controller)


def _export() -> dict[str, Any]:
    """The counts, as plain data a pytest-xdist worker can hand to the controller."""
    tallies = {
        side: {vendor: dataclasses.asdict(tally) for vendor, tally in getattr(TOTAL, side).items()}
        for side in ("requests", "responses")
    }
    return {**tallies, "outcomes": len(TOTAL.outcomes), "missing": list(_MISSING)}


def _merge(data: dict[str, Any]) -> None:
    for side in ("requests", "responses"):
        for vendor, counts in data.get(side, {}).items():
            tally = getattr(TOTAL, side).setdefault(vendor, contracts.Tally())
            for name, value in counts.items():
                setattr(tally, name, getattr(tally, name) + value)
    _FROM_WORKERS.append(int(data.get("outcomes", 0)))
    _MISSING.extend(data.get("missing", []))


def hand_over(session: pytest.Session) -> None:
    """In a pytest-xdist worker: hand this worker's counts to the controller, which prints the summary."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["stand_in_contracts"] = _export()


def take_from(node: Any) -> None:
    """In pytest-xdist's controller: add a finished worker's counts to the summary's."""
    data = (getattr(node, "workeroutput", None) or {}).get("stand_in_contracts")
    if data:
        _merge(data)


def write(terminalreporter: Any) -> None:
    if not TOTAL.outcomes and not sum(_FROM_WORKERS) and not _MISSING:
        return
    terminalreporter.section("stand-in contracts (exchanges validated against the vendors' descriptions)")
    for line in TOTAL.lines():
        terminalreporter.write_line(line)
    if _MISSING:
        terminalreporter.write_line(f"not validated in {len(_MISSING)} test(s): {_MISSING[0]}")
