"""Backups of the production PostgreSQL (Coolify's scheduled backups), and of the local one (``pg_dump``).

**Production.** Coolify runs ``pg_dump --format=custom`` in the database's container on a schedule and keeps
the files on the server (``/data/coolify/backups/databases/...``), optionally uploading them to an
S3-compatible bucket. The runbook keeps *one* scheduled backup per production database, with the wanted
frequency (a cron expression or ``daily``...) and local retention (how many files, how many days): it is
created when missing and corrected when it differs (``PATCH``), so a second run changes nothing.

An S3 destination is optional: with ``s3_endpoint`` set, the bucket's credentials come from the secrets
``BACKUP_S3_ACCESS_KEY`` / ``BACKUP_S3_SECRET_KEY`` (never parameters, never shown); Coolify keeps them and
never answers them back, so the runbook keeps an HMAC fingerprint of them (state file ``operations``) to
know when they changed.

**A backup that is known to work.** The verification wants the latest execution finished (``success``)
with a non-empty file, and the file on the server with that size. When the latest successful execution
is older than ``fresh_hours`` (or ``backup_now`` is set) the task runs one now (``PATCH ... backup_now``)
and waits for it: a fresh backup is an action, an old-enough one is ``ok``.

**Local.** On request (``local=True``) the development database is dumped through compose:
``docker compose exec -T <postgres service> pg_dump -Fc`` with the container's own ``POSTGRES_USER`` and
``POSTGRES_DB``, into ``RUNBOOK_BACKUP_DIR`` (``.work/backups/``); verified by ``pg_restore --list``
reading the file back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.clients.coolify import Client
from helpers.core import secrets, steps
from helpers.core.poll import PollTimeout, poll
from helpers.core.settings import env
from helpers.core.steps import StepResult
from helpers.ops import common
from helpers.services import compose

S3_KEY, S3_SECRET = "BACKUP_S3_ACCESS_KEY", "BACKUP_S3_SECRET_KEY"
S3_STATE = "backup_s3"
FINISHED = ("success", "failed")


@dataclass(frozen=True)
class BackupSpec:
    """The wanted schedule of one database's backups."""

    frequency: str = "daily"  # cron expression, or every_minute / hourly / daily / weekly / monthly / yearly
    keep: int = 7  # files kept on the server (0: no limit)
    keep_days: int = 0  # days kept on the server (0: no limit)
    timeout: int = 3600  # seconds one backup may take (60 to 36000)
    databases: str = ""  # databases_to_backup (empty: the database's own, postgres_db)
    s3_storage_uuid: str = ""  # empty: no S3 upload

    def __post_init__(self) -> None:
        if not self.frequency.strip():
            raise ValueError("frequency is empty: give a cron expression (`0 3 * * *`) or daily, hourly...")
        if self.keep < 0 or self.keep_days < 0:
            raise ValueError("keep and keep_days count files and days: 0 (no limit) or more")
        if not 60 <= self.timeout <= 36000:
            raise ValueError(f"timeout {self.timeout}: Coolify accepts 60 to 36000 seconds")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "frequency": self.frequency,
            "enabled": True,
            "database_backup_retention_amount_locally": self.keep,
            "database_backup_retention_days_locally": self.keep_days,
            "timeout": self.timeout,
            "save_s3": bool(self.s3_storage_uuid),
        }
        if self.databases:
            body["databases_to_backup"] = self.databases
        if self.s3_storage_uuid:
            body["s3_storage_uuid"] = self.s3_storage_uuid
        return body


# --------------------------------------------------------------------------- the S3 destination


def _s3_fingerprint(endpoint: str, bucket: str, region: str) -> str | None:
    """An HMAC of the destination and its credentials (keyed with the runbook's local fingerprint key)."""
    from helpers.cloud import github_secrets

    key = github_secrets.fingerprint_key(create=True)
    if key is None:
        return None
    message = "\0".join((endpoint, bucket, region, secrets.get(S3_KEY), secrets.get(S3_SECRET))).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def ensure_s3_storage(
    client: Client, name: str, endpoint: str, bucket: str, region: str, dry_run: bool = False
) -> tuple[StepResult, str]:
    """The S3 destination in Coolify (found by name), created or updated; (step, its uuid or "")."""
    step = f"S3 destination {name!r}"
    for secret in (S3_KEY, S3_SECRET):
        if not secrets.has(secret):
            raise secrets.MissingSecret(secret)
    found = [s for s in client.s3_storages() if s.get("name") == name]
    wanted = {"name": name, "endpoint": endpoint, "bucket": bucket, "region": region}
    fingerprint = _s3_fingerprint(endpoint, bucket, region)
    recorded = common.ops_record(S3_STATE)
    if found:
        storage = found[0]
        same = (
            all(storage.get(k) == v for k, v in wanted.items()) and recorded.get("fingerprint") == fingerprint
        )
        if same:
            return steps.ok(step, f"{endpoint} bucket {bucket} ({storage['uuid']})"), storage["uuid"]
        if dry_run:
            return steps.changed(step, "would update its endpoint, bucket or keys", dry_run=True), storage[
                "uuid"
            ]
        body = {**wanted, "key": secrets.get(S3_KEY), "secret": secrets.get(S3_SECRET)}
        client.update_s3_storage(storage["uuid"], body)
        common.update_ops(S3_STATE, {**recorded, "uuid": storage["uuid"], "fingerprint": fingerprint})
        return steps.changed(step, f"updated: {endpoint} bucket {bucket}"), storage["uuid"]
    if dry_run:
        return steps.changed(step, f"would create it: {endpoint} bucket {bucket}", dry_run=True), ""
    body = {**wanted, "key": secrets.get(S3_KEY), "secret": secrets.get(S3_SECRET)}
    uuid = str(client.create_s3_storage(body)["uuid"])
    common.update_ops(S3_STATE, {**recorded, "uuid": uuid, "fingerprint": fingerprint})
    return steps.changed(step, f"created: {endpoint} bucket {bucket} ({uuid})"), uuid


# --------------------------------------------------------------------------- the schedule


def schedules(client: Client, database_uuid: str) -> list[dict[str, Any]]:
    return client.database_backups(database_uuid)


def differences(current: Mapping[str, Any], spec: BackupSpec, recorded_s3: str = "") -> dict[str, Any]:
    """The fields of ``spec`` that the scheduled backup ``current`` does not have (for a PATCH).

    Coolify answers the S3 destination as an id, not the uuid it was given: the destination is compared
    with the uuid the runbook recorded when it set it (``recorded_s3``).
    """
    out = {}
    for key, value in spec.body().items():
        if key == "s3_storage_uuid":
            if recorded_s3 != value or current.get("s3_storage_id") is None:
                out[key] = value
        elif current.get(key) != value:
            out[key] = value
    return out


def _recorded_s3(backup_uuid: str) -> str:
    return str(common.ops_record(S3_STATE).get("backups", {}).get(backup_uuid, ""))


def _record_s3(backup_uuid: str, storage_uuid: str) -> None:
    record = common.ops_record(S3_STATE)
    record["backups"] = {**record.get("backups", {}), backup_uuid: storage_uuid}
    common.update_ops(S3_STATE, record)


def ensure_schedule(
    client: Client, database_uuid: str, spec: BackupSpec, dry_run: bool = False
) -> tuple[StepResult, dict[str, Any] | None]:
    """One scheduled backup of the database with ``spec``: created, corrected, or ok."""
    step = "scheduled backup"
    found = schedules(client, database_uuid)
    if not found:
        if dry_run:
            return steps.changed(
                step, f"would create it: {_describe(spec)}", diff=_diff(spec.body()), dry_run=True
            ), None
        created = client.create_backup(database_uuid, spec.body())
        if spec.s3_storage_uuid:
            _record_s3(str(created["uuid"]), spec.s3_storage_uuid)
        backup = next(
            (b for b in schedules(client, database_uuid) if b.get("uuid") == created.get("uuid")), None
        )
        return steps.changed(step, f"created: {_describe(spec)}", diff=_diff(spec.body())), backup
    backup = found[0]
    extra = f" ({len(found) - 1} more exist: remove them in the dashboard)" if len(found) > 1 else ""
    patch = differences(backup, spec, _recorded_s3(backup["uuid"]))
    if not patch:
        return steps.ok(step, f"{_describe(spec)} ({backup['uuid']}){extra}"), backup
    if dry_run:
        return steps.changed(
            step, f"would correct {', '.join(patch)}{extra}", diff=_diff(patch), dry_run=True
        ), backup
    client.update_backup(database_uuid, backup["uuid"], patch)
    if spec.s3_storage_uuid:
        _record_s3(backup["uuid"], spec.s3_storage_uuid)
    backup = next(b for b in schedules(client, database_uuid) if b.get("uuid") == backup["uuid"])
    return steps.changed(step, f"corrected {', '.join(patch)}{extra}", diff=_diff(patch)), backup


def _describe(spec: BackupSpec) -> str:
    keep = f"keep {spec.keep} files" if spec.keep else "keep every file"
    days = f", {spec.keep_days} days" if spec.keep_days else ""
    s3 = ", copied to S3" if spec.s3_storage_uuid else ", on the server only"
    return f"{spec.frequency}, {keep}{days}{s3}"


def _diff(fields: Mapping[str, Any]) -> str:
    return "\n".join(f"+ {k}: {v}" for k, v in fields.items())


# --------------------------------------------------------------------------- executions


def latest_success(executions: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The newest execution that finished with ``success`` and a file (executions come newest first)."""
    for execution in executions:
        if execution.get("status") == "success" and int(execution.get("size") or 0) > 0:
            return dict(execution)
    return None


def age_seconds(execution: Mapping[str, Any], now: dt.datetime | None = None) -> float:
    created = common.parse_time(str(execution.get("created_at") or ""))
    return ((now or common.now()) - created).total_seconds() if created else float("inf")


def run_now(
    client: Client,
    database_uuid: str,
    backup_uuid: str,
    timeout: float = 600.0,
    interval: float = 3.0,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Ask Coolify for a backup now (``backup_now``) and wait until its execution finishes; the execution."""
    before = {e["uuid"] for e in client.backup_executions(database_uuid, backup_uuid)}
    client.update_backup(database_uuid, backup_uuid, {"backup_now": True})

    def newest() -> dict[str, Any] | None:
        fresh = [e for e in client.backup_executions(database_uuid, backup_uuid) if e["uuid"] not in before]
        return fresh[0] if fresh else None

    seen: list[str] = []

    def show(execution: dict[str, Any] | None) -> None:
        status = (execution or {}).get("status") or "queued"
        if not seen or seen[-1] != status:
            seen.append(status)
            progress(f"backup execution {(execution or {}).get('uuid', '(not started yet)')}: {status}")

    try:
        return poll(
            newest,
            until=lambda e: e is not None and e.get("status") in FINISHED,
            timeout=timeout,
            interval=interval,
            what="the backup to finish",
            on_attempt=show,
        )  # type: ignore[return-value]
    except PollTimeout as exc:
        raise TimeoutError(
            f"{exc}. Next step: the dashboard → the database → Backups shows the execution and its log"
        ) from None


def ensure_fresh_backup(
    client: Client,
    database_uuid: str,
    backup: Mapping[str, Any] | None,
    fresh_hours: float = 24.0,
    backup_now: bool = False,
    dry_run: bool = False,
    **wait: Any,
) -> tuple[StepResult, dict[str, Any] | None]:
    """A successful backup younger than ``fresh_hours``: the latest one, or a new one taken now."""
    step = "a recent backup"
    if backup is None:  # dry run before the schedule exists
        return steps.changed(step, "would take one now, once the schedule exists", dry_run=True), None
    executions = client.backup_executions(database_uuid, backup["uuid"])
    latest = latest_success(executions)
    if latest is not None and not backup_now and age_seconds(latest) <= fresh_hours * 3600:
        age = common.age_text(age_seconds(latest))
        return steps.ok(step, f"{latest['filename']} ({latest['size']} bytes, {age} old)"), latest
    why = (
        "backup_now=True"
        if backup_now
        else (f"the latest is older than {fresh_hours:g} h" if latest else "none yet")
    )
    if dry_run:
        return steps.changed(step, f"would run a backup now ({why})", dry_run=True), latest
    execution = run_now(client, database_uuid, backup["uuid"], **wait)
    if execution.get("status") != "success":
        return steps.failed(
            step, f"the backup {execution.get('uuid')} failed: {secrets.scrub(str(execution.get('message')))}"
        ), execution
    return steps.changed(step, f"{execution['filename']} ({execution.get('size')} bytes; {why})"), execution


def server_file_size(remote: Any, path: str) -> int | None:
    """The size of ``path`` on the server (``stat``, as root), or None when it is not there."""
    out = remote.run(f"stat -c %s {shlex.quote(path)}", check=False)
    try:
        return int(out.stdout.strip()) if out.ok else None
    except ValueError:
        return None


def check_backup(
    check: Any,
    execution: Mapping[str, Any] | None,
    file_size: int | None,
    spec: BackupSpec,
    backup: Mapping[str, Any] | None,
) -> None:
    """The verification: the schedule as wanted, a finished execution with a file, the file on the server."""
    check(
        "scheduled backup as wanted",
        backup is not None and not differences(backup, spec, _recorded_s3(str(backup["uuid"]))),
        _describe(spec) if backup else "none",
        hint="run the task again (it creates or corrects the schedule); the dashboard → database → Backups",
    )
    status = (execution or {}).get("status")
    check(
        "latest backup execution finished with success",
        status == "success",
        f"{(execution or {}).get('uuid', '-')}: {status or 'none'}",
        hint="read the execution's message (dashboard → database → Backups); run with backup_now=True again",
    )
    size = int((execution or {}).get("size") or 0)
    check(
        "its file is not empty",
        size > 0,
        f"{size} bytes",
        hint="an empty dump means pg_dump failed: its message says why",
    )
    path = str((execution or {}).get("filename") or "")
    check(
        "the file is on the server with that size",
        file_size is not None and file_size == size and size > 0,
        f"{path}: {file_size if file_size is not None else 'missing'}",
        hint="the retention may have removed it, or the server lost it: run a backup now (backup_now=True)",
    )


# --------------------------------------------------------------------------- local (development) backups


@dataclass(frozen=True)
class LocalBackup:
    path: Path
    size: int
    tables: int


def postgres_service(project: compose.Project) -> str:
    """The compose service of PostgreSQL (the one the app's DATABASE_URL points at)."""
    found = [s.name for s in project.services.values() if s.url_key == "DATABASE_URL"]
    if not found:
        raise LookupError(f"{project.file} has no PostgreSQL service (an image named postgres): run task 1.7")
    return found[0]


def local_backup(
    app_dir: str | Path,
    dest_dir: str | Path = "",
    dry_run: bool = False,
    clock: Callable[[], dt.datetime] = common.now,
) -> tuple[StepResult, LocalBackup | None]:
    """``pg_dump -Fc`` of the local database through compose into ``dest_dir``, read back by pg_restore."""
    step = "local backup (pg_dump through compose)"
    project = compose.load(app_dir)
    service = postgres_service(project)
    folder = Path(dest_dir or env.backup_dir).expanduser()
    stamp = clock().strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"{project.name}-{service}-{stamp}.dump"
    if dry_run:
        return steps.changed(step, f"would write {path}", dry_run=True), None
    folder.mkdir(parents=True, exist_ok=True)
    dump = 'pg_dump --format=custom --no-owner --no-acl -U "$POSTGRES_USER" "$POSTGRES_DB"'
    with path.open("wb") as out:
        proc = subprocess.run(
            ["docker", *project.args("exec", "-T", service, "sh", "-c", dump)],
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=1800,
        )
    if proc.returncode != 0:
        path.unlink(missing_ok=True)
        return steps.failed(
            step, f"pg_dump failed: {secrets.scrub(proc.stderr.decode(errors='replace').strip())[-400:]}"
        ), None
    path.chmod(0o600)  # the data is the app's: not for other users of this machine
    listing = read_back(project, service, path)
    return steps.changed(step, f"{path} ({path.stat().st_size} bytes, {listing} tables)"), LocalBackup(
        path, path.stat().st_size, listing
    )


def read_back(project: compose.Project, service: str, path: Path) -> int:
    """``pg_restore --list`` of the file, run in the service's container: the number of tables it holds."""
    with path.open("rb") as source:
        proc = subprocess.run(
            ["docker", *project.args("exec", "-T", service, "pg_restore", "--list")],
            stdin=source,
            capture_output=True,
            timeout=600,
        )
    if proc.returncode != 0:
        raise ValueError(
            f"pg_restore cannot read {path}: {proc.stderr.decode(errors='replace').strip()[-300:]}"
        )
    return sum(
        1
        for line in proc.stdout.decode(errors="replace").splitlines()
        if " TABLE " in line and "TABLE DATA" not in line
    )


def check_local(check: Any, backup: LocalBackup | None, app_dir: str | Path) -> None:
    check(
        "local backup written",
        backup is not None and backup.path.is_file(),
        str(backup.path) if backup else "none",
        hint="see the step's error above",
    )
    if backup is None:
        return
    check(
        "it is not empty",
        backup.path.stat().st_size > 0,
        f"{backup.path.stat().st_size} bytes",
        hint="pg_dump wrote nothing: run it by hand to see why",
    )
    project = compose.load(app_dir)
    try:
        tables = read_back(project, postgres_service(project), backup.path)
    except ValueError as exc:
        check(
            "pg_restore reads it back", False, str(exc), hint="the file is truncated or not a pg_dump archive"
        )
        return
    check("pg_restore reads it back", True, f"{tables} tables listed")
