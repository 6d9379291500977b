"""The evidence the CI log shows: recorded by a test, carried from pytest-xdist's workers, printed once."""

from __future__ import annotations

import evidence


class _Reporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.lines.append(f"== {title} ==")

    def write_line(self, line: str) -> None:
        self.lines.append(line)


class _Config:
    workeroutput: dict


def test_a_worker_s_records_reach_the_controller_s_summary(monkeypatch) -> None:
    monkeypatch.setattr(evidence, "_RECORDS", [])
    evidence.record("images built:", ["web: 261 MB", "worker: 335 MB"])
    worker = _Config()
    worker.workeroutput = {}
    evidence.hand_over(worker)
    monkeypatch.setattr(evidence, "_RECORDS", [])  # the controller starts with none of its own
    evidence.take_from(worker)
    reporter = _Reporter()
    evidence.write(reporter)
    assert reporter.lines == [
        "== what the tests built and ran (evidence) ==",
        "images built:",
        "  web: 261 MB",
        "  worker: 335 MB",
    ]


def test_nothing_recorded_prints_nothing(monkeypatch) -> None:
    monkeypatch.setattr(evidence, "_RECORDS", [])
    reporter = _Reporter()
    evidence.write(reporter)
    assert reporter.lines == []
