"""The diagnosis model: the first cause is the lowest broken check, blocked checks are not blamed."""

from __future__ import annotations

import pytest

from helpers.core.checks import Checklist, VerificationFailed, verify
from helpers.services import diagnose
from helpers.services.diagnose import Diagnosis, Finding


def broken(layer: str, name: str, cause: str = "it broke", anchor: str = "") -> Finding:
    return Finding(layer, name, False, "seen", cause=cause, fix="do this", anchor=anchor)


def test_the_first_cause_is_the_first_broken_finding_in_check_order() -> None:
    d = Diagnosis("phase1")
    d.add(Finding("engine", "engine", True, "ok"))
    first = d.add(broken("containers", "postgres", "the postgres container is not running"))
    d.add(broken("env", "DATABASE_URL", "points at the VM"))
    d.block("app", "health", first)
    assert d.first_cause is first
    assert [f.name for f in d.broken] == ["postgres", "DATABASE_URL"]
    assert not d.ok
    assert d.findings[-1].blocked and "postgres is broken" in d.findings[-1].detail
    assert [row[0] for row in d.rows()] == ["✅", "❌", "❌", "⏸"]


def test_blocked_checks_alone_are_not_ok_and_not_a_cause() -> None:
    d = Diagnosis("phase2")
    d.block("ssh", "ssh", broken("droplet", "droplet"))
    assert d.first_cause is None and not d.ok


def test_explain_names_cause_fix_and_the_guide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_DOCS_URL", raising=False)
    finding = broken("engine", "engine", "the Docker engine is not running", "engine-not-running")
    text = diagnose.explain(finding)
    guide = "docs/troubleshooting.md#engine-not-running"
    assert text == f"the Docker engine is not running: do this (see {guide})"
    monkeypatch.setenv("RUNBOOK_DOCS_URL", "https://runbook.example/")
    assert diagnose.guide_link("port-taken") == "https://runbook.example/troubleshooting/#port-taken"
    assert diagnose.guide_link("") == ""


def test_check_diagnosis_fails_on_a_broken_finding_and_notes_blocked_ones() -> None:
    d = Diagnosis("phase1")
    d.add(Finding("engine", "engine", True, "Engine 20.10"))
    cause = d.add(broken("ports", "port 5432 free", "port 5432 is taken by process nc (pid 7)", "port-taken"))
    d.block("app", "health", cause)
    with pytest.raises(VerificationFailed) as err, verify("doctor") as check:
        diagnose.check_diagnosis(check, d)
    assert "port 5432 is taken by process nc (pid 7): do this" in str(err.value)
    check = Checklist("again")
    diagnose.check_diagnosis(check, d)
    assert [r.kind for r in check.results] == ["check", "check", "note"]


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        ("connection failed: Connection refused", True),
        ('connection to server at "127.0.0.1", port 5432 failed: Connection refused', True),
        ("Error 111 connecting to localhost:6379. Connection refused.", True),
        ('FATAL: password authentication failed for user "postgres"', False),
    ],
)
def test_refused_errors_are_told_from_authentication_errors(error: str, refused: bool) -> None:
    assert diagnose.is_refused(error) is refused


def test_layers_are_ordered_bottom_up_for_both_phases() -> None:
    order = diagnose.LAYERS.index
    assert order("engine") < order("containers") < order("ports") < order("env") < order("app")
    assert order("dns") < order("droplet") < order("ssh") < order("coolify") < order("apps") < order("url")


def test_a_server_that_answered_with_an_error_is_not_a_refused_connection() -> None:
    answered = (
        'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
        'FATAL:  password authentication failed for user "postgres"'
    )
    assert not diagnose.is_refused(answered)
    assert not diagnose.is_refused('connection failed: ... FATAL:  database "x" does not exist')
    assert diagnose.is_refused('connection failed: connection to server at "127.0.0.1", port 5432 failed: '
                               "Connection refused")  # fmt: skip


def test_the_doctor_starts_a_silent_app_with_its_own_scripts_read_from_package_json(tmp_path) -> None:
    """Each app names its processes otherwise: the fix is read from its package.json, never guessed."""
    import json

    from testsupport import FIXTURE_APP, ROOT

    from helpers.ops.doctor import start_commands
    from helpers.services.doctor import start_hint

    corpus = ROOT / "tests" / "fixtures" / "corpus"
    assert start_commands(str(FIXTURE_APP)) == ["pnpm dev", "pnpm worker"]
    assert start_commands(str(corpus / "jobboard")) == ["pnpm dev:web", "pnpm dev:worker"]
    assert start_commands(str(corpus / "pulse")) == ["pnpm dev"]  # one script starts web and worker
    npm_app = tmp_path / "npm-app"
    (npm_app / "src").mkdir(parents=True)
    scripts = {"start:dev": "next dev", "jobs": "tsx watch src/worker.ts"}
    (npm_app / "package.json").write_text(json.dumps({"scripts": scripts, "dependencies": {"bullmq": "5"}}))
    (npm_app / "package-lock.json").write_text("{}")
    (npm_app / "src" / "worker.ts").write_text(
        'import { Worker } from "bullmq";\nnew Worker("jobs", async () => 1);\n'
    )
    assert start_commands(str(npm_app)) == ["npm run start:dev", "npm run jobs"]
    assert start_commands(str(ROOT / "docs")) == []  # no package.json: nothing guessed
    assert start_commands("") == []
    assert start_hint(["pnpm dev:web", "pnpm dev:worker"]) == (
        "start it in the app directory (`pnpm dev:web`, then `pnpm dev:worker`)"
    )
    assert "pnpm" not in start_hint([])
