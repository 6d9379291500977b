"""The restore drill's comparison: per table rows and checksum, the report, the verification."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.clients import coolify
from helpers.core.checks import Checklist
from helpers.ops import restore
from helpers.ops.restore import DrillResult, TableStats
from helpers.rehearse.coolify import CoolifyStandIn


def result(live: dict[str, TableStats], back: dict[str, TableStats], age: float = 600) -> DrillResult:
    execution = {
        "uuid": "e1",
        "filename": "/data/coolify/backups/x.dmp",
        "created_at": "2026-12-01T10:00:00Z",
    }
    return DrillResult(execution, age, 1.25, "runbook-restore-drill-1", live, back, scratch_removed=True)


def test_psql_output_parses_into_stats_per_table() -> None:
    text = 'public.t1|2|4ec6d2c1\ns."Odd Name"|1|f2970507\n\nnot a row\n'
    assert restore.parse_stats(text) == {
        "public.t1": TableStats(2, "4ec6d2c1"),
        's."Odd Name"': TableStats(1, "f2970507"),
    }


def test_equal_tables_pass_and_the_report_gives_age_and_restore_time() -> None:
    same = {"public.t1": TableStats(2, "aa"), "public.jobs": TableStats(0, "bb")}
    drill = result(same, dict(same))
    check = Checklist("drill")
    restore.check_drill(check, drill)
    assert not check.failures
    assert drill.differing() == [] and restore.step_of(drill).status == "ok"
    record = drill.record()
    assert (record["tables"], record["rows"], record["backup_age_seconds"], record["restore_seconds"]) == (
        2,
        2,
        600,
        1.2,
    )
    rows = dict(restore.summary_rows(drill))
    assert rows["restore took"] == "1.2 s" and "10 min ago" in rows["backup taken"]


@pytest.mark.parametrize(
    ("back", "failing"),
    [
        ({"public.t1": TableStats(3, "aa")}, "public.t1: row count and checksum equal"),  # a row more
        (
            {"public.t1": TableStats(2, "zz")},
            "public.t1: row count and checksum equal",
        ),  # same count, other rows
        ({}, "the same tables as production"),  # a table missing from the backup
    ],
)
def test_a_difference_fails_and_names_the_table(back: dict[str, TableStats], failing: str) -> None:
    drill = result({"public.t1": TableStats(2, "aa")}, back)
    check = Checklist("drill")
    restore.check_drill(check, drill)
    assert failing in {r.name for r in check.failures}
    assert restore.step_of(drill).status == "failed"


def test_an_old_backup_or_a_left_scratch_database_fails() -> None:
    same = {"public.t1": TableStats(1, "a")}
    drill = result(same, dict(same), age=3 * 86400)
    drill.scratch_removed = False
    check = Checklist("drill")
    restore.check_drill(check, drill, max_age_hours=48)
    assert {r.name for r in check.failures} == {
        "the backup is younger than 48 h",
        "the scratch database is removed",
    }


def test_no_successful_backup_means_no_drill(tmp_path: Path) -> None:
    fake = CoolifyStandIn({"t": None})
    client = coolify.Client(
        "t", "http://203.0.113.7:8000/api/v1", transport=fake.transport(), sleep=lambda s: None
    )
    server = client.servers()[0]
    project = client.create_project("p")
    (env,) = client.environments(project["uuid"])
    target = {"project_uuid": project["uuid"], "server_uuid": server["uuid"], "environment_uuid": env["uuid"]}
    db = client.create_database("postgresql", target)
    with pytest.raises(restore.DrillError, match="no successful backup"):
        restore.latest_backup(client, db["uuid"])
    client.create_backup(db["uuid"], {"frequency": "daily", "backup_now": True})  # fails: no runtime here
    with pytest.raises(restore.DrillError, match="run the backup task"):
        restore.latest_backup(client, db["uuid"])
