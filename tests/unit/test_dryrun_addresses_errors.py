"""helpers.core.dryrun (the one plan check, the one verification call), helpers.core.addresses (the address
map), poll.report_changes, and the one ApiError family of the vendor clients."""

from __future__ import annotations

import pytest

from helpers.clients import errors
from helpers.clients.coolify import ApiDisabled, UnsupportedVersion
from helpers.core import addresses, poll
from helpers.core.checks import Checklist, VerificationFailed
from helpers.core.dryrun import check_plan, verify_run
from helpers.core.settings import SettingError
from helpers.core.steps import StepResult

PLAN = [StepResult("a", "ok"), StepResult("b", "would change"), StepResult("c", "skipped", "n/a")]


def test_the_plan_check_passes_a_plan_and_notes_what_would_change() -> None:
    check = Checklist("plan")
    check_plan(check, PLAN)
    assert check.failures == [] and len(check.checks) == 2
    assert [(r.name, r.detail) for r in check.results if r.kind == "note"] == [("would change", "b")]


@pytest.mark.parametrize(
    ("step", "failing"),
    [
        (StepResult("x", "changed"), "dry run changed nothing"),
        (StepResult("x", "failed", "why"), "no step failed"),
    ],
)
def test_the_plan_check_fails_on_a_change_or_a_failure(step: StepResult, failing: str) -> None:
    check = Checklist("plan")
    check_plan(check, [*PLAN, step])
    assert [r.name for r in check.failures] == [failing]


def test_verify_run_checks_the_plan_in_a_dry_run_and_the_world_otherwise() -> None:
    seen: list[str] = []

    def real(check: Checklist) -> str:
        seen.append("real")
        check("the world", True)
        return "found"

    assert verify_run("t", PLAN, True, real, also=lambda check: check("also", True)) is None
    assert seen == []
    assert verify_run("t", PLAN, False, real) == "found" and seen == ["real"]
    with pytest.raises(VerificationFailed, match="dry run changed nothing"):
        verify_run("t", [StepResult("x", "changed")], True, real)
    with pytest.raises(VerificationFailed, match="also"):
        verify_run("t", PLAN, True, real, also=lambda check: check("also", False))


def test_the_address_map_reaches_forwarded_ports_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_ADDRESS_MAP", raising=False)
    assert addresses.reach("203.0.113.7", 8000) == ("203.0.113.7", 8000)
    assert addresses.http_url("203.0.113.7", 3000) == "http://203.0.113.7:3000"
    monkeypatch.setenv(
        "RUNBOOK_ADDRESS_MAP", "203.0.113.7:8000=127.0.0.1:18000, 203.0.113.7:3000=127.0.0.1:13000"
    )
    assert addresses.reach("203.0.113.7", 8000) == ("127.0.0.1", 18000)
    assert addresses.http_url("203.0.113.7", 3000) == "http://127.0.0.1:13000"
    assert addresses.reach("203.0.113.7", 22) == ("203.0.113.7", 22)  # not mapped: itself
    assert addresses.parse("[::1]:80=127.0.0.1:8080") == {("::1", 80): ("127.0.0.1", 8080)}


@pytest.mark.parametrize("bad", ["203.0.113.7:8000", "203.0.113.7=127.0.0.1:1", "a:1=b:port", "a:1=b:70000"])
def test_a_malformed_address_map_says_how_to_write_it(bad: str) -> None:
    with pytest.raises(SettingError, match="host:port=local_host:local_port"):
        addresses.parse(bad)


def test_report_changes_shows_each_new_answer_once_with_the_seconds() -> None:
    ticks = iter([0.0, 1.0, 7.0])  # made at 0; clock read only when something is shown
    lines: list[str] = []
    show = poll.report_changes(lines.append, lambda a: f"status {a}", clock=lambda: next(ticks))
    for answer in ("new", "new", "new", "active"):
        show(answer)
    assert lines == ["[    1s] status new", "[    7s] status active"]


def test_one_error_family_for_every_vendor() -> None:
    do = errors.Forbidden("no", vendor="DigitalOcean", status=403, method="GET", path="/v2/x", hint="scope")
    gh = errors.Forbidden("reading x: the token may not do this", vendor="GitHub", status=403, hint="perm")
    assert isinstance(do, errors.ApiError) and isinstance(gh, errors.ApiError)
    assert str(do) == "DigitalOcean GET /v2/x answered 403: no\nnext step: scope"
    assert str(gh) == "GitHub: reading x: the token may not do this\nnext step: perm"
    refused = errors.InvalidRequest("bad", vendor="Coolify", status=422, method="POST", path="/p",
                                    errors={"name": ["too long"]})  # fmt: skip
    assert "\n  name: too long" in str(refused) and refused.errors == {"name": ["too long"]}
    assert issubclass(ApiDisabled, errors.Forbidden) and issubclass(UnsupportedVersion, errors.ApiError)


def test_the_rehearsal_droplet_publishes_what_the_address_map_says(monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers.rehearse import droplet

    monkeypatch.setenv(
        "RUNBOOK_ADDRESS_MAP",
        "127.0.0.1:8000=127.0.0.1:41001,127.0.0.1:3000=127.0.0.1:41002,203.0.113.7:8000=127.0.0.1:9",
    )
    assert droplet.forwards() == {8000: 41001, 3000: 41002}  # only the droplet's own address (127.0.0.1)
    monkeypatch.delenv("RUNBOOK_ADDRESS_MAP")
    assert droplet.forwards() == {}


def test_a_reported_crash_says_where_in_the_project_it_was_raised() -> None:
    import json

    from helpers.core.errors import crash_line

    try:
        json.loads("\n")  # what the Docker CLI prints for an image it does not have
    except ValueError as exc:
        line = crash_line(exc)
    here = "tests/unit/test_dryrun_addresses_errors.py"
    assert line.startswith("JSONDecodeError: Expecting value: line 2 column 1 (char 1) (" + here + ":")
    assert line.endswith(" in test_a_reported_crash_says_where_in_the_project_it_was_raised)")
    assert crash_line(KeyError()) == "KeyError"  # never raised: no frame to name
