"""helpers.runner.execute.reported: what a notebook's outputs say, read as the runner reads them."""

from __future__ import annotations

from helpers.core.checks import MIME, Checklist
from helpers.runner.execute import reported


def notebook_with(checklist: Checklist) -> dict:
    payload = {"title": checklist.title, "checks": [r.__dict__ for r in checklist.results]}
    output = {"output_type": "display_data", "data": {MIME: payload}, "metadata": {}}
    return {"cells": [{"cell_type": "code", "outputs": [output]}]}


def test_notes_are_not_counted_as_checks() -> None:
    checklist = Checklist("t")
    checklist.note("version", "1.2")
    checklist("a", True)
    checklist("b", False, hint="fix b")
    _, _, checks = reported(notebook_with(checklist))
    assert checks["passed"] == 1 and checks["failed"] == 1
    assert [f["name"] for f in checks["failures"]] == ["b"]
