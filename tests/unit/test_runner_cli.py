"""The command line: help everywhere, exit code 2 for bad input (nothing runs), list, lab."""

from __future__ import annotations

import json
import os
import sys

import pytest

from helpers.runner import cli
from helpers.runner.demo import write_phase


@pytest.mark.parametrize("command", [[], ["list"], ["run"], ["plan"], ["resume"], ["lab"]])
def test_help_on_every_subcommand(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: runbook" in out and "examples:" in out


def test_run_help_documents_outputs_environment_and_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    for needle in (
        "--from",
        "--to",
        "--only",
        "-p NAME VALUE",
        "--dry-run",
        "--output-dir",
        "--keep-going",
        "--jobs",
        "ledger.json",
        "summary.html",
        "runner.log",
        "RUNBOOK_RUNS_DIR",
        "exit codes",
        "shared:",
        "tasks:",
    ):
        assert needle in out, needle


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run"])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:
        cli.main(["explode"])
    assert exit_.value.code == 2


@pytest.fixture
def demo(tmp_path, monkeypatch):
    registry = write_phase(tmp_path / "demo")
    monkeypatch.setenv("RUNBOOK_REGISTRY", str(registry))
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def _no_run_folder(tmp_path) -> bool:
    return not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "phase1", "-p", "wrok_dir", "/x"], "unknown parameter 'wrok_dir' (did you mean work_dir?)"),
        (["run", "phase1", "-p", "github_token", "x"], "looks like a secret"),
        (["run", "phase1", "-p", "label", "ghp_" + "b" * 36], "holds a secret"),
        (["run", "phase1", "--from", "1.9"], "has no task 1.9"),
        (["run", "phase9"], "unknown phase"),
        (["plan", "phase1", "--only", "1.2", "--to", "1.3"], "cannot be combined"),
        (["resume"], "no run to resume"),
    ],
)
def test_bad_input_exits_2_before_anything_runs(demo, capsys, argv, message) -> None:
    assert cli.main(argv) == 2
    out = capsys.readouterr().out
    assert message in " ".join(out.split()), out
    assert _no_run_folder(demo)


def test_missing_notebooks_are_listed(demo, capsys) -> None:
    (demo / "demo" / "notebooks" / "phase1" / "1.04-left.ipynb").unlink()
    assert cli.main(["run", "phase1"]) == 2
    out = capsys.readouterr().out
    assert "1.4 Left branch: notebooks/phase1/1.04-left.ipynb" in out
    assert "--only/--from/--to" in out
    assert _no_run_folder(demo)


def test_list_shows_groups_kinds_needs_and_last_status(demo, capsys) -> None:
    assert cli.main(["list", "phase1", "--params"]) == 0
    out = capsys.readouterr().out
    assert "never run" in out and "1.6" in out and "1.4, 1.5" in out and "manual" in out
    assert "work_dir =" in out


def test_lab_command_binds_loopback_and_opens_the_notebooks(tmp_path) -> None:
    cmd = cli.lab_command(tmp_path, 8899, True, ["--", "--ServerApp.token=abc"])
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path / 'notebooks'}" in cmd
    assert "--ServerApp.ip=127.0.0.1" in cmd and "--ServerApp.port=8899" in cmd and "--no-browser" in cmd
    assert cmd[-1] == "--ServerApp.token=abc" and "--" not in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)


def test_list_reads_the_last_status_from_the_ledger(demo, capsys) -> None:
    from helpers.runner import catalog as C
    from helpers.runner import runs

    catalog = C.default()
    ledger, _ = runs.new_ledger(catalog, runs.Request(phase="phase1"))
    ledger.task("1.1").status = "passed"
    ledger.task("1.2").status = "failed"
    ledger.status = "failed"
    ledger.save()
    assert cli.main(["list", "phase1"]) == 0
    out = capsys.readouterr().out
    assert f"last run {ledger.run_id}: failed" in " ".join(out.split())
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert "passed" in rows["1.1"] and "failed" in rows["1.2"] and "pending" in rows["1.3"]
    assert json.loads(ledger.path.read_text())["phase"] == "phase1"


def test_live_progress_shows_task_n_of_m_and_the_current_cell() -> None:
    from rich.console import Console

    from helpers.runner.ledger import TaskRecord
    from helpers.runner.progress import RichObserver, observer_for
    from helpers.runner.redact import Redactor

    console = Console(force_terminal=True, record=True, width=120)
    observer = observer_for(console, Redactor(["s3cr3tvalue"]))
    assert isinstance(observer, RichObserver)
    record = TaskRecord("1.4", "Create and start the services", "automated", [], "n", "o", 1)

    class FakeLedger:
        phase, phase_title, mode, run_dir = "phase1", "Phase 1", "run", "/tmp/x"

    observer.run_started(FakeLedger(), 15)
    observer.task_started(record, 5, 15)
    observer.cell("1.4", 3, 9, "compose.up(app_dir, token='s3cr3tvalue')")
    rows = [observer.progress.tasks[i].description for i in range(len(observer.progress.tasks))]
    assert rows[0] == "task 5 of 15: 1.4 Create and start the services"
    assert rows[1].startswith("  1.4 cell 3/9: compose.up(app_dir") and "s3cr3tvalue" not in rows[1]
    record.status, record.duration = "passed", 2.5
    observer.task_finished(record, 5, 15)
    observer.run_finished(FakeLedger())
    assert "[5/15] ✅ 1.4 Create and start the services passed in 2.50 s" in console.export_text()
    plain = observer_for(Console(file=__import__("io").StringIO()), Redactor([]))
    assert not isinstance(plain, RichObserver)  # not a terminal: one line per task, no live display
