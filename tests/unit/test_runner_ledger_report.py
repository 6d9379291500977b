"""The ledger (save, load, find the last run) and the summaries built from it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers.runner import report
from helpers.runner.ledger import (
    Ledger,
    LedgerError,
    TaskRecord,
    last_run,
    new_run_dir,
    remember,
    troubleshooting_anchor,
)
from helpers.runner.redact import Redactor


def make_ledger(run_dir: Path, mode: str = "run", phase: str = "phase1") -> Ledger:
    tasks = [
        TaskRecord(
            "1.1",
            "First",
            "automated",
            [],
            "notebooks/phase1/1.01-a.ipynb",
            "1.01-a.ipynb",
            1,
            status="passed",
            duration=1.25,
            steps={"changed": 2, "ok": 1},
            changes=[
                {"block": "b", "name": "write file", "status": "changed", "detail": "3 lines", "diff": "+x"}
            ],
            checks={"passed": 2, "failed": 0, "failures": []},
        ),
        TaskRecord(
            "1.2",
            "Second <b>",
            "manual",
            ["1.1"],
            "notebooks/phase1/1.02-b.ipynb",
            "1.02-b.ipynb",
            2,
            status="failed",
            duration=0.5,
            error={
                "cell_index": 4,
                "exec_count": 3,
                "source": "with verify('x') as check:\n    check('a', 0)",
                "ename": "VerificationFailed",
                "evalue": "x: 1 of 1 checks failed",
                "traceback": "tb",
            },
            checks={
                "passed": 0,
                "failed": 1,
                "failures": [
                    {"block": "x", "name": "engine answers", "detail": "no", "hint": "start Docker Desktop"}
                ],
            },
        ),
        TaskRecord(
            "1.3",
            "Third",
            "docs",
            ["1.2"],
            "notebooks/phase1/1.03-c.ipynb",
            "1.03-c.ipynb",
            3,
            status="not-run",
            reason="needs 1.2, which failed",
        ),
        TaskRecord(
            "1.4",
            "Fourth",
            "docs",
            [],
            "notebooks/phase1/1.04-d.ipynb",
            "1.04-d.ipynb",
            1,
            selected=False,
            status="skipped",
            reason="not selected (--only 1.1 1.2 1.3)",
        ),
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(
        run_id=run_dir.name,
        phase=phase,
        phase_title="Phase 1: local",
        mode=mode,
        dry_run=False,
        root=str(run_dir.parent.parent),
        registry="r",
        options={"selection": "--only 1.1 1.2 1.3"},
        parameters={"shared": {}, "tasks": {}},
        tasks=tasks,
        status="failed",
    )
    ledger.path = run_dir / "ledger.json"
    return ledger


def test_save_load_roundtrip_and_scrub(tmp_path) -> None:
    ledger = make_ledger(tmp_path / "runs" / "r1")
    ledger.tasks[1].error["evalue"] = "token s3cr3tvalue"
    ledger.save(Redactor(["s3cr3tvalue"]))
    text = ledger.path.read_text()
    assert "s3cr3tvalue" not in text
    loaded = Ledger.load(ledger.run_dir)
    assert [r.status for r in loaded.tasks] == ["passed", "failed", "not-run", "skipped"]
    assert loaded.task("1.2").error["exec_count"] == 3
    assert loaded.overall() == "failed"
    assert not list(ledger.run_dir.glob(".*tmp"))  # atomic writes leave no temporary file


def test_overall_status() -> None:
    ledger = make_ledger(Path("/nonexistent/runs/x"))
    ledger.tasks[1].status, ledger.tasks[2].status = "passed", "passed"
    assert ledger.overall() == "passed"  # the unselected, skipped task does not count
    ledger.tasks[2].status = "interrupted"
    assert ledger.overall() == "interrupted"


def test_load_errors(tmp_path) -> None:
    with pytest.raises(LedgerError, match="not a run folder"):
        Ledger.load(tmp_path)
    (tmp_path / "ledger.json").write_text("{")
    with pytest.raises(LedgerError, match="not valid JSON"):
        Ledger.load(tmp_path)


def test_last_run_picks_the_newest_run_of_the_right_mode(tmp_path) -> None:
    base = tmp_path / "runs"
    first = make_ledger(base / "a")
    first.created = "2026-01-01T00:00:00"
    first.save()
    plan = make_ledger(base / "b", mode="plan")
    plan.created = "2026-01-03T00:00:00"
    plan.save()
    second = make_ledger(base / "c", phase="phase2")
    second.created = "2026-01-02T00:00:00"
    second.save()
    assert last_run(base).run_id == "c"
    assert last_run(base, phase="phase1").run_id == "a"
    assert last_run(base, modes=("plan",)).run_id == "b"
    elsewhere = make_ledger(tmp_path / "elsewhere" / "d")
    elsewhere.created = "2026-02-01T00:00:00"
    elsewhere.save()
    remember(base, elsewhere.run_dir)  # an --output-dir run outside runs/ is found through LAST
    assert last_run(base).run_id == "d"
    assert last_run(tmp_path / "empty") is None


def test_new_run_dir_is_unique(tmp_path) -> None:
    a, b = new_run_dir(tmp_path, "phase1"), new_run_dir(tmp_path, "phase1")
    assert a != b and a.is_dir() and b.is_dir() and a.name.endswith("-phase1")
    assert new_run_dir(tmp_path, "phase2", "plan").name.endswith("-phase2-plan")


def test_troubleshooting_anchor() -> None:
    assert troubleshooting_anchor("1.4") == "task-1-4"
    assert troubleshooting_anchor("2.13") == "task-2-13"
    assert report.troubleshooting_ref("1.14") == "docs/troubleshooting.md#task-1-14"


def test_markdown_summary(tmp_path) -> None:
    ledger = make_ledger(tmp_path / "runs" / "r1")
    (ledger.run_dir / "1.01-a.ipynb").write_text("{}")
    md = report.markdown(ledger)
    assert "| 1 | 1.1 First | ⚙ automated | ✅ passed | 1.25 s | 2 changed, 1 ok, 2 checks passed |" in md
    assert "[1.01-a.ipynb](1.01-a.ipynb)" in md
    assert "1.02-b.ipynb](" not in md.split("## ")[0]  # no link to a notebook that was not written
    assert "**Cell:** In [3] (cell 4)" in md and "VerificationFailed" in md
    assert "engine answers: no — next step: start Docker Desktop" in md
    assert "docs/troubleshooting.md#task-1-2" in md
    assert "needs 1.2, which failed" in md and "runbook resume" in md


def test_html_summary_is_self_contained_and_escaped(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("RUNBOOK_DOCS_URL", raising=False)
    ledger = make_ledger(tmp_path / "runs" / "r1")
    page = report.html_page(ledger)
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"(src|href)=['\"](https?:)?//", page)  # nothing fetched from elsewhere
    assert "Second &lt;b&gt;" in page and "Second <b>" not in page
    assert "href='../../docs/troubleshooting.md#task-1-2'" in page
    assert "id='task-1-2'" in page
    monkeypatch.setenv("RUNBOOK_DOCS_URL", "https://ops.example.org/runbook/")
    assert "https://ops.example.org/runbook/troubleshooting/#task-1-2" in report.html_page(ledger)


def test_write_and_terminal_outputs(tmp_path) -> None:
    ledger = make_ledger(tmp_path / "runs" / "r1")
    md, page = report.write(ledger)
    assert md.read_text().startswith("# Phase 1: local") and page.read_text().startswith("<!doctype html>")
    text = report.failure_text(ledger)
    assert text.startswith("1.2 Second <b> failed at In [3] (cell 4): VerificationFailed")
    assert "troubleshooting: docs/troubleshooting.md#task-1-2" in text
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(report.terminal_table(ledger))
    out = console.export_text()
    assert "1.1 First" in out and "failed" in out and "not-run" in out
    assert json.loads(ledger.save().read_text())["tasks"][0]["id"] == "1.1"


def test_exit_codes(tmp_path) -> None:
    from helpers.runner.runs import exit_code, plan_exit_code

    ledger = make_ledger(tmp_path / "runs" / "r1")
    assert exit_code(ledger) == 1
    ledger.status = "interrupted"
    assert exit_code(ledger) == 130 and plan_exit_code(ledger) == 130
    ledger.status = "passed"
    assert exit_code(ledger) == 0
    ledger.status = "failed"
    assert plan_exit_code(ledger) == 0  # a failed check in a dry-run is part of the plan
    ledger.tasks[1].error["ename"] = "TypeError"
    assert plan_exit_code(ledger) == 1  # a crashed dry-run is not
