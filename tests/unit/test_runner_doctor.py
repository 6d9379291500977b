"""``runbook doctor``: the subcommand, its exit codes and JSON; ``runbook run operations`` needs --only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.runner import cli


@pytest.fixture(autouse=True)
def no_phase2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))  # nothing recorded: phase 2 never ran


def test_doctor_phase2_without_a_droplet_exits_1_and_names_the_first_cause(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["doctor", "phase2", "--json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    first = report["first_cause"]
    assert report["scope"] == "phase2" and not report["ok"]
    assert first["layer"] == "droplet" and "no record" in first["cause"] and "task 2.2" in first["fix"]
    assert first["guide"].endswith("troubleshooting.md#droplet-not-active")
    statuses = [f["status"] for f in report["findings"]]
    assert statuses[0] == "broken" and set(statuses[1:]) == {"blocked"}  # nothing above it is blamed


def test_doctor_prints_the_first_cause_last(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "phase2"]) == 1
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("phase2: first cause: phase 2 has not made a droplet")


def test_doctor_rejects_an_unknown_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["doctor", "phase3"])
    assert exc.value.code == 2


def test_doctor_help_shows_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["doctor", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "exit codes: 0 nothing is wrong" in out


def test_operations_run_one_at_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "operations"]) == 2
    out = capsys.readouterr().out
    assert "operations is not a chain" in out and "--only" in out
