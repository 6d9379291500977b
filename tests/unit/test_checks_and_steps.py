"""Verification tables raise on failure; step results speak Ansible."""

from __future__ import annotations

import pytest

from helpers.core import steps
from helpers.core.checks import Checklist, VerificationFailed, verify


def test_all_checks_pass_shows_table_and_does_not_raise(capsys):
    with verify("Docker is ready") as check:
        check("engine answers", True, "20.10")
        check("disk", 5 >= 4, "5 GB free")
    out = capsys.readouterr().out
    assert "Docker is ready" in out and "✅" in out and "❌" not in out


def test_a_failed_check_raises_with_its_detail_and_next_step(capsys):
    with pytest.raises(VerificationFailed) as err, verify("Docker is ready") as check:
        check("engine answers", True)
        check("disk", False, "1.2 GB free", hint="run `docker system prune`")
    message = str(err.value)
    assert "1 of 2 checks failed" in message
    assert "1.2 GB free" in message and "docker system prune" in message
    assert "❌" in capsys.readouterr().out


def test_an_exception_inside_the_block_becomes_a_failed_row():
    with pytest.raises(VerificationFailed) as err, verify("t") as check:
        check("first", True)
        raise ConnectionRefusedError("port 5432")
    assert "ConnectionRefusedError" in str(err.value) and "port 5432" in str(err.value)
    assert isinstance(err.value.__cause__, ConnectionRefusedError)


def test_a_verification_without_checks_fails():
    with pytest.raises(VerificationFailed, match="no check was recorded"), verify("empty"):
        pass


def test_call_records_probe_exceptions_and_values():
    check = Checklist("t")
    assert check.call("version", lambda: "15.4") == "15.4"
    assert check.call("broken", lambda: 1 / 0, hint="fix it") is None
    assert [r.ok for r in check.results] == [True, False]
    assert "ZeroDivisionError" in check.results[1].detail and check.results[1].hint == "fix it"


def test_hint_is_dropped_on_success():
    check = Checklist("t")
    check("ok", True, hint="unused")
    assert check.results[0].hint == ""


def test_step_vocabulary_and_dry_run():
    assert steps.changed("write file", dry_run=True).status == "would change"
    assert steps.changed("write file").status == "changed"
    assert steps.ok("x").detail == "already done"
    with pytest.raises(ValueError):
        steps.StepResult("x", "done")  # type: ignore[arg-type]


def test_report_raises_when_a_step_failed(capsys):
    results = [steps.ok("a"), steps.failed("b", "port 5432 is taken by postgres (pid 42)")]
    with pytest.raises(steps.StepFailed, match="pid 42"):
        steps.report(results)
    assert "🔴 failed" in capsys.readouterr().out


def test_report_shows_diffs(capsys):
    steps.report(steps.changed("edit", diff="-old\n+new"))
    out = capsys.readouterr().out
    assert "+new" in out and "diff: edit" in out


def test_a_note_is_shown_but_is_no_check() -> None:
    checklist = Checklist("t")
    checklist.note("engine version", "20.10")
    checklist("port free", True)
    assert [r.icon for r in checklist.results] == ["ℹ️", "✅"]
    assert len(checklist.checks) == 1 and checklist.failures == []
    checklist.raise_on_failure()


def test_notes_alone_are_no_verification() -> None:
    checklist = Checklist("only notes")
    checklist.note("a", "b")
    with pytest.raises(VerificationFailed, match="no check was recorded"):
        checklist.raise_on_failure()


def test_a_failure_counts_checks_not_notes() -> None:
    with pytest.raises(VerificationFailed, match="1 of 2 checks failed"), verify("t") as check:
        check.note("info", "x")
        check("a", True)
        check("b", False, hint="fix b")
