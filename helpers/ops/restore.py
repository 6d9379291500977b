"""The restore drill: the latest backup restored into a scratch database, compared with the live one.

A backup is only as good as its restore. On the server, next to production and never in it:

1. the newest successful backup execution of the production PostgreSQL (Coolify's API) and its file
   (``/data/coolify/backups/...``, checked with ``stat``);
2. a **scratch** PostgreSQL container from the live database's own image (``docker inspect``), without a
   network (``--network none``: nothing can reach it, it can reach nothing) and labelled
   ``runbook.restore-drill``; a database ``drill`` in it;
3. ``pg_restore --no-owner --no-acl`` of the file into it (timed);
4. per table of the dumped database: the row count and a checksum (the md5 of the rows' text, sorted),
   read with the same SQL on the live database and on the scratch one, and compared;
5. the scratch container removed (also when a step fails), and checked gone.

The report says how old the backup was and how long the restore took. Rows written to production
after the backup make a live table differ from it: the comparison names each table that differs, and
a drill right after a fresh backup (the backup task first) compares like with like.
"""

from __future__ import annotations

import secrets as stdlib_secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from helpers.clients.coolify import Client
from helpers.core import steps
from helpers.core.poll import PollTimeout, poll
from helpers.core.steps import StepResult
from helpers.ops import backups, common

LABEL = "runbook.restore-drill"
SCRATCH_DB = "drill"
DRILL_KEY = "restore_drill"
# One row per base table of the user's schemas: schema.table, row count, md5 of the sorted rows' text.
_PER_TABLE = (
    "select count(*) as c, md5(coalesce(string_agg(md5(t::text), '''' order by md5(t::text)), '''')) as h "
    "from %I.%I t"
)
TABLE_STATS_SQL = f"""
select format('%I.%I', table_schema, table_name) as name,
       (xpath('/row/c/text()', x))[1]::text::bigint as rows,
       (xpath('/row/h/text()', x))[1]::text as checksum
from (
  select table_schema, table_name,
         query_to_xml(format('{_PER_TABLE}', table_schema, table_name), false, true, '') as x
  from information_schema.tables
  where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')
) as per_table
order by 1
""".strip()


class DrillError(RuntimeError):
    """The drill cannot run (no backup, no file); the message says what to do next."""


@dataclass(frozen=True)
class TableStats:
    rows: int
    checksum: str


@dataclass
class DrillResult:
    execution: dict[str, Any]
    backup_age_seconds: float
    restore_seconds: float
    scratch: str
    live: dict[str, TableStats] = field(default_factory=dict)
    restored: dict[str, TableStats] = field(default_factory=dict)
    scratch_removed: bool = False

    @property
    def tables(self) -> list[str]:
        return sorted(set(self.live) | set(self.restored))

    def differing(self) -> list[str]:
        return [t for t in self.tables if self.live.get(t) != self.restored.get(t)]

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(table, live rows, restored rows, checksums) for a table."""
        out = []
        for name in self.tables:
            live, back = self.live.get(name), self.restored.get(name)
            same = "equal" if live and back and live.checksum == back.checksum else "differ"
            out.append((name, str(live.rows) if live else "—", str(back.rows) if back else "—", same))
        return out

    def record(self) -> dict[str, Any]:
        return {
            "at": common.now().isoformat(timespec="seconds"),
            "execution": self.execution.get("uuid"),
            "file": self.execution.get("filename"),
            "backup_age_seconds": round(self.backup_age_seconds),
            "restore_seconds": round(self.restore_seconds, 1),
            "tables": len(self.tables),
            "rows": sum(s.rows for s in self.restored.values()),
            "differing": self.differing(),
        }


def parse_stats(text: str) -> dict[str, TableStats]:
    """``psql -At -F '|'`` output of :data:`TABLE_STATS_SQL` → {table: stats}."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[1].isdigit():
            out[parts[0]] = TableStats(int(parts[1]), parts[2])
    return out


def latest_backup(client: Client, database_uuid: str) -> dict[str, Any]:
    """The newest successful execution of the database's scheduled backups (whose file was not removed)."""
    found = []
    for backup in client.database_backups(database_uuid):
        for execution in client.backup_executions(database_uuid, backup["uuid"]):
            if execution.get("status") == "success" and int(execution.get("size") or 0) > 0:
                found.append(execution)
    found = [e for e in found if common.parse_time(str(e.get("created_at") or ""))]
    if not found:
        raise DrillError(
            "there is no successful backup of the production database yet. Next step: run the backup "
            "task (`runbook run operations --only backup`), then the drill"
        )
    return max(found, key=lambda e: common.parse_time(str(e["created_at"])))  # type: ignore[arg-type,return-value]


def psql(container: str, user: str, db: str, sql: str) -> str:
    """The command that runs ``sql`` in ``container`` as ``user`` on ``db`` (unaligned, ``|`` between)."""
    return (
        f"docker exec -i {shlex.quote(container)} psql -X -v ON_ERROR_STOP=1 -At -F '|' "
        f"-U {shlex.quote(user)} -d {shlex.quote(db)} -c {shlex.quote(sql)}"
    )


def live_image(remote: Any, container: str) -> str:
    out = remote.run(f"docker inspect --format '{{{{.Config.Image}}}}' {shlex.quote(container)}", check=False)
    image = out.stdout.strip()
    if not out.ok or not image:
        raise DrillError(
            f"the production database container {container} is not on the server "
            f"({out.stderr.strip()[:200]}). Next step: is PostgreSQL running? (`runbook doctor phase2`)"
        )
    return image


def scratch_gone(remote: Any, name: str) -> bool:
    out = remote.run(f"docker ps -aq --filter name=^/{shlex.quote(name)}$", check=False)
    return out.ok and not out.stdout.strip()


def drill(
    client: Client,
    remote: Any,
    database_uuid: str,
    ready_timeout: float = 120.0,
    interval: float = 1.0,
    progress: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
) -> DrillResult:
    """Run the drill (see the module docstring); the scratch container is removed whatever happens."""
    execution = latest_backup(client, database_uuid)
    live = client.database(database_uuid)
    user, db_name = str(live.get("postgres_user") or "postgres"), str(execution.get("database_name") or "")
    db_name = db_name or str(live.get("postgres_db") or "postgres")
    path = str(execution["filename"])
    size = backups.server_file_size(remote, path)
    if size is None:
        raise DrillError(
            f"the backup file {path} is not on the server (the retention removed it?). Next step: run the "
            "backup task with backup_now=True, then the drill"
        )
    image = live_image(remote, database_uuid)
    name = f"runbook-restore-drill-{stdlib_secrets.token_hex(4)}"
    result = DrillResult(execution, backups.age_seconds(execution), 0.0, name)
    progress(f"scratch PostgreSQL {name} from {image} (no network)")
    remote.run(
        f"docker run -d --name {name} --network none --label {LABEL}=1 "
        f"-e POSTGRES_HOST_AUTH_METHOD=trust {shlex.quote(image)}"
    )
    try:
        try:
            poll(
                lambda: remote.run(f"docker exec {name} pg_isready -U postgres -q", check=False).ok,
                timeout=ready_timeout,
                interval=interval,
                what=f"the scratch PostgreSQL {name} to accept connections",
            )
        except PollTimeout as exc:
            logs = remote.run(f"docker logs --tail 20 {name}", check=False)
            raise DrillError(f"{exc}\n{logs.stdout}{logs.stderr}") from None
        remote.run(f"docker exec {name} createdb -U postgres {SCRATCH_DB}")
        progress(f"restoring {path} ({size} bytes) into {name}/{SCRATCH_DB}")
        began = clock()
        restore = remote.run(
            f"docker exec -i {name} pg_restore --no-owner --no-acl --exit-on-error -U postgres "
            f"-d {SCRATCH_DB} < {shlex.quote(path)}",
            check=False,
            timeout=3600,
        )
        result.restore_seconds = clock() - began
        if not restore.ok:
            raise DrillError(f"pg_restore failed: {restore.stderr.strip()[-600:]}")
        result.live = parse_stats(remote.run(psql(database_uuid, user, db_name, TABLE_STATS_SQL)).stdout)
        result.restored = parse_stats(remote.run(psql(name, "postgres", SCRATCH_DB, TABLE_STATS_SQL)).stdout)
    finally:
        remote.run(f"docker rm -f -v {name}", check=False)
        result.scratch_removed = scratch_gone(remote, name)
    common.update_ops(DRILL_KEY, result.record())
    return result


def plan(client: Client, remote: Any, database_uuid: str) -> StepResult:
    """The dry run: which backup would be restored, from where, into what."""
    execution = latest_backup(client, database_uuid)
    size = backups.server_file_size(remote, str(execution["filename"]))
    image = live_image(remote, database_uuid)
    age = common.age_text(backups.age_seconds(execution))
    return steps.changed(
        "restore drill",
        f"would restore {execution['filename']} ({size if size is not None else 'missing'} bytes, {age} old) "
        f"into a scratch container of {image}, compare every table with production, then remove it",
        dry_run=True,
    )


def step_of(result: DrillResult) -> StepResult:
    """The drill as a step: nothing lasting changed (the scratch container is gone), so ``ok`` or failed."""
    detail = (
        f"{len(result.tables)} tables, {sum(s.rows for s in result.restored.values())} rows restored in "
        f"{result.restore_seconds:.1f} s from a backup {common.age_text(result.backup_age_seconds)} old"
    )
    if result.differing():
        return steps.failed(
            "restore drill", f"{detail}; differ from production: {', '.join(result.differing())}"
        )
    return steps.ok("restore drill", f"{detail}; every table equal; scratch {result.scratch} removed")


def check_drill(check: Any, result: DrillResult, max_age_hours: float = 48.0) -> None:
    check(
        "the backup restores (pg_restore without error)",
        bool(result.restored) or not result.live,
        f"{len(result.restored)} tables restored in {result.restore_seconds:.1f} s",
        hint="read pg_restore's error above; a dump of another PostgreSQL major version needs that version",
    )
    check(
        "the same tables as production",
        set(result.live) == set(result.restored),
        f"{len(result.live)} live, {len(result.restored)} restored",
        hint="tables created after the backup are missing from it: run the backup task, then the drill",
    )
    for table in result.tables:
        live, back = result.live.get(table), result.restored.get(table)
        check(
            f"{table}: row count and checksum equal",
            live == back,
            f"live {live.rows if live else '—'} rows, restored {back.rows if back else '—'} rows"
            + (
                ""
                if live == back
                else " (checksums differ)"
                if live and back and live.rows == back.rows
                else ""
            ),
            hint="production changed after the backup, or the backup is incomplete: run the backup task "
            "(backup_now=True), then the drill again; if it still differs, the dump is broken",
        )
    check(
        f"the backup is younger than {max_age_hours:g} h",
        result.backup_age_seconds <= max_age_hours * 3600,
        common.age_text(result.backup_age_seconds),
        hint="the schedule does not run (dashboard → database → Backups → executions): fix it, or run the "
        "backup task",
    )
    check(
        "the scratch database is removed",
        result.scratch_removed,
        result.scratch,
        hint=f"remove it on the server: `docker rm -f -v {result.scratch}`",
    )


def summary_rows(result: DrillResult) -> list[tuple[str, str]]:
    return [
        ("backup", str(result.execution.get("filename"))),
        (
            "backup taken",
            f"{result.execution.get('created_at')} ({common.age_text(result.backup_age_seconds)} ago)",
        ),
        ("restore took", f"{result.restore_seconds:.1f} s"),
        ("tables compared", str(len(result.tables))),
        ("rows restored", str(sum(s.rows for s in result.restored.values()))),
        ("differing tables", ", ".join(result.differing()) or "none"),
    ]
