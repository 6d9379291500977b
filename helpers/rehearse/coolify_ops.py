"""The Coolify stand-in's operations routes: scheduled database backups and their executions, S3 storages,
container logs, application updates and restarts (the operations notebooks: backup, restore-drill, logs,
monitoring, rollback, teardown).

Mixed into :class:`helpers.rehearse.coolify.CoolifyStandIn`. Along ``coolify-openapi.yaml`` and, where the
description is vague, the controllers it is generated from (coollabsio/coolify at 379abb25:
``DatabasesController``, ``ApplicationsController``, ``S3StoragesController``, ``DatabaseBackupJob``):

* ``GET /databases/{uuid}/backups`` answers the scheduled backups *with their executions* (the controller's
  ``ScheduledDatabaseBackup::with('executions')``; the description says only "a string");
  ``POST`` creates one (201 ``{uuid, message}``; ``frequency`` a cron expression or ``hourly``/``daily``/...;
  ``save_s3`` needs an ``s3_storage_uuid`` of the team; ``backup_now`` runs it at once; other fields answer
  422 "This field is not allowed."); ``PATCH|DELETE /databases/{uuid}/backups/{scheduled_backup_uuid}``;
  ``GET .../executions`` (``{executions: [{uuid, filename, size, created_at, message, status}]}``, newest
  first) and ``DELETE .../executions/{execution_uuid}``;
* a backup run does what ``DatabaseBackupJob`` does for a standalone PostgreSQL: ``pg_dump --format=custom
  --no-acl --no-owner`` in the database's container, written to
  ``/data/coolify/backups/databases/<team>-<id>/<name>-<uuid>/pg-dump-<db>-<timestamp>.dmp`` on the server,
  the execution ``running`` → ``success`` (with the file's size) or ``failed`` (with the error); the local
  retention (``database_backup_retention_amount_locally``) removes the oldest files; with ``save_s3`` the
  upload is attempted and, when the endpoint does not answer, the execution succeeds with "Warning: S3
  upload failed" as Coolify's does. Schedules are stored, not run on their own (no cron here): backups run
  when asked (``backup_now``);
* ``GET|POST /s3-storages``, ``GET|PATCH|DELETE /s3-storages/{uuid}`` (key and secret are never answered);
* ``GET /applications/{uuid}/logs`` and ``GET /databases/{uuid}/logs`` (``lines``, default 100, at most
  10000; ``show_timestamps``): ``docker logs -n <lines> [--timestamps]`` of the container; 400 "Application
  is not running." / "Database is not running." when it is not;
* ``PATCH /applications/{uuid}`` (the documented fields; the health check settings, and
  ``docker_registry_image_tag``, which may pin a digest as ``sha256-<hex>``); ``POST
  /applications/{uuid}/restart`` queues a restart-only deployment ("Restart request queued.");
  ``POST /databases/{uuid}/restart``.
"""

from __future__ import annotations

import contextlib
import copy
import re
import socket
import threading
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from helpers.rehearse.base import HTTPError, Request, Response, json_response

CRON_WORDS = frozenset(
    {"every_minute", "hourly", "daily", "weekly", "monthly", "yearly", "@hourly", "@daily", "@weekly"}
    | {"@monthly", "@yearly"}
)
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
BACKUP_FIELDS = (
    "save_s3", "enabled", "dump_all", "frequency", "databases_to_backup",
    "database_backup_retention_amount_locally", "database_backup_retention_days_locally",
    "database_backup_retention_max_storage_locally", "database_backup_retention_amount_s3",
    "database_backup_retention_days_s3", "database_backup_retention_max_storage_s3", "s3_storage_uuid",
    "timeout",
)  # fmt: skip
BACKUP_RULES = {
    "frequency": "string",
    "enabled": "boolean",
    "save_s3": "boolean",
    "dump_all": "boolean",
    "backup_now": "boolean|nullable",
    "s3_storage_uuid": "string|nullable",
    "databases_to_backup": "string|nullable",
    "database_backup_retention_amount_locally": "integer",
    "database_backup_retention_days_locally": "integer",
    "database_backup_retention_max_storage_locally": "numeric",
    "database_backup_retention_amount_s3": "integer",
    "database_backup_retention_days_s3": "integer",
    "database_backup_retention_max_storage_s3": "numeric",
    "timeout": "integer",
}
BACKUP_DEFAULTS = {
    "enabled": True,
    "save_s3": False,
    "dump_all": False,
    "s3_storage_id": None,
    "database_backup_retention_amount_locally": 0,
    "database_backup_retention_days_locally": 0,
    "database_backup_retention_max_storage_locally": 0.0,
    "database_backup_retention_amount_s3": 0,
    "database_backup_retention_days_s3": 0,
    "database_backup_retention_max_storage_s3": 0.0,
    "timeout": 3600,
    "disable_local_backup": False,
    "description": None,
}
S3_FIELDS = ("name", "description", "endpoint", "bucket", "region", "key", "secret", "is_usable")
S3_HIDDEN = ("key", "secret")
# PATCH /applications/{uuid}: the fields the description documents (others: "This field is not allowed.")
APP_UPDATE_RULES: dict[str, str] = {
    "name": "string|max:255",
    "description": "string|nullable",
    "domains": "string|nullable",
    "ports_exposes": "string",
    "ports_mappings": "string|nullable",
    "docker_registry_image_name": "string",
    "docker_registry_image_tag": "string",
    "health_check_enabled": "boolean",
    "health_check_type": "string|in:http,cmd",
    "health_check_command": "string|nullable",
    "health_check_path": "string",
    "health_check_port": "string|nullable",
    "health_check_host": "string|nullable",
    "health_check_method": "string",
    "health_check_return_code": "integer",
    "health_check_scheme": "string",
    "health_check_response_text": "string|nullable",
    "health_check_interval": "integer",
    "health_check_timeout": "integer",
    "health_check_retries": "integer",
    "health_check_start_period": "integer",
    "custom_docker_run_options": "string|nullable",
    "docker_images_to_keep": "integer",
    "max_restart_count": "integer",
    "instant_deploy": "boolean",
}
HEALTH_DEFAULTS = {
    "health_check_type": "http",
    "health_check_timeout": 5,
    "health_check_retries": 10,
    "health_check_start_period": 5,
}
DOCKER_TAG = re.compile(r"[\w][\w.-]{0,127}")
TEAM_DIR = "root-team-0"  # the root team (id 0) as DatabaseBackupJob names its folder
LOG_LINES_DEFAULT, LOG_LINES_MAX = 100, 10000


def valid_cron(expression: str) -> bool:
    """Coolify's ``validate_cron_expression``: a known word, or a five-field cron expression."""
    if expression in CRON_WORDS:
        return True
    fields = expression.split()
    if len(fields) != 5:
        return False
    for text, (low, high) in zip(fields, CRON_RANGES, strict=True):
        if not CRON_FIELD.match(text):
            return False
        numbers = [int(n) for n in re.findall(r"\d+", re.sub(r"/\d+", "", text))]
        if any(not low <= n <= high for n in numbers):
            return False
    return True


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def log_lines(raw: str | None) -> int:
    """``normalizeLogLines``: a positive integer, at most 10000; anything else the default 100."""
    try:
        value = int(raw or "")
    except ValueError:
        return LOG_LINES_DEFAULT
    return LOG_LINES_DEFAULT if value <= 0 else min(value, LOG_LINES_MAX)


def flag(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "on", "yes")


class CoolifyOperations:
    """Routes and state of backups, S3 storages, logs and app updates (a mixin of the Coolify stand-in)."""

    # provided by CoolifyStandIn
    api: Any
    store: dict[str, dict[str, dict[str, Any]]]
    runtime: Any
    clock: Any
    lock: Any
    json_body: Any
    database_or_404: Any
    application_or_404: Any
    lifecycle: Any
    status_of: Any
    touch: Any
    save: Any
    queue_deployment: Any
    deployments: dict[str, dict[str, Any]]
    databases: dict[str, dict[str, Any]]
    next_id: Any
    check_body: Any  # helpers.rehearse.coolify.validate (this module may not import that one: a circle)
    make_uuid: Any
    iso: Any
    data_dir: Path = Path("/data/coolify")  # where the server keeps Coolify's files (``--data-dir``)

    def _register_operations(self) -> None:
        for name in ("backups", "executions", "s3_storages"):
            self.store.setdefault(name, {})
        self.api("GET", "/databases/{uuid}/backups", self._list_backups)
        self.api("POST", "/databases/{uuid}/backups", self._create_backup, ability="write")
        self.api(
            "PATCH", "/databases/{uuid}/backups/{scheduled_backup_uuid}", self._update_backup, ability="write"
        )
        self.api(
            "DELETE",
            "/databases/{uuid}/backups/{scheduled_backup_uuid}",
            self._delete_backup,
            ability="write",
        )
        self.api("GET", "/databases/{uuid}/backups/{scheduled_backup_uuid}/executions", self._list_executions)
        self.api(
            "DELETE",
            "/databases/{uuid}/backups/{scheduled_backup_uuid}/executions/{execution_uuid}",
            self._delete_execution,
            ability="write",
        )
        self.api("GET", "/s3-storages", self._list_s3)
        self.api("POST", "/s3-storages", self._create_s3, ability="write")
        self.api("GET", "/s3-storages/{uuid}", self._get_s3)
        self.api("PATCH", "/s3-storages/{uuid}", self._update_s3, ability="write")
        self.api("DELETE", "/s3-storages/{uuid}", self._delete_s3, ability="write")
        self.api("GET", "/applications/{uuid}/logs", self._application_logs)
        self.api("GET", "/databases/{uuid}/logs", self._database_logs)
        self.api("PATCH", "/applications/{uuid}", self._update_application, ability="write")
        self.api("POST", "/databases/{uuid}/restart", self._restart_database, ability="deploy")

    @property
    def backups(self) -> dict[str, dict[str, Any]]:
        return self.store["backups"]

    @property
    def executions(self) -> dict[str, dict[str, Any]]:
        return self.store["executions"]

    @property
    def s3_storages(self) -> dict[str, dict[str, Any]]:
        return self.store["s3_storages"]

    # ---------------------------------------------------------------- scheduled backups

    def _backup_view(self, backup: Mapping[str, Any]) -> dict[str, Any]:
        view = {k: copy.deepcopy(v) for k, v in backup.items() if k != "database_uuid"}
        runs = [e for e in self.executions.values() if e["scheduled_database_backup_id"] == backup["id"]]
        view["executions"] = [self._execution_model(e) for e in sorted(runs, key=lambda e: -e["id"])]
        return view

    @staticmethod
    def _execution_model(execution: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in execution.items() if k != "backup_uuid"}

    def _backup_or_404(self, db: Mapping[str, Any], backup_uuid: str, message: str) -> dict[str, Any]:
        backup = self.backups.get(backup_uuid)
        if backup is None or backup["database_uuid"] != db["uuid"]:
            raise HTTPError(404, message)
        return backup

    def _validate_backup(self, body: Mapping[str, Any], creating: bool) -> dict[str, Any]:
        rules = dict(BACKUP_RULES)
        if creating:
            rules["frequency"] = "string|required"
        errors: dict[str, list[str]] = {}
        try:
            self.check_body(body, rules, allowed=(*BACKUP_FIELDS, "backup_now"))
        except HTTPError as exc:
            errors = dict(exc.extra["errors"])
        for name in (k for k in BACKUP_RULES if k.startswith("database_backup_retention")):
            value = body.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                errors.setdefault(name, []).append(f"The {name.replace('_', ' ')} field must be at least 0.")
        timeout = body.get("timeout")
        if isinstance(timeout, int) and not isinstance(timeout, bool) and not 60 <= timeout <= 36000:
            errors.setdefault("timeout", []).append("The timeout field must be between 60 and 36000.")
        if errors:
            raise HTTPError(422, "Validation failed.", extra={"errors": errors})
        if "frequency" in body and not valid_cron(str(body["frequency"])):
            raise HTTPError(
                422,
                "Validation failed.",
                extra={"errors": {"frequency": ["Invalid cron expression or frequency format."]}},
            )
        if body.get("save_s3") in (True, 1, "1", "true") and not body.get("s3_storage_uuid"):
            raise HTTPError(
                422,
                "Validation failed.",
                extra={
                    "errors": {
                        "s3_storage_uuid": ["The s3_storage_uuid field is required when save_s3 is true."]
                    }
                },
            )
        if body.get("s3_storage_uuid") and body["s3_storage_uuid"] not in self.s3_storages:
            raise HTTPError(
                422,
                "Validation failed.",
                extra={"errors": {"s3_storage_uuid": ["The selected S3 storage is invalid for this team."]}},
            )
        names = str(body.get("databases_to_backup") or "")
        if names and not all(re.fullmatch(r"[A-Za-z0-9_.-]+", n.strip()) for n in names.split(",")):
            raise HTTPError(
                422,
                "Validation failed.",
                extra={"errors": {"databases_to_backup": ["Invalid database name in databases_to_backup."]}},
            )
        data = {k: body[k] for k in BACKUP_FIELDS if k in body}
        if "s3_storage_uuid" in data:
            storage = self.s3_storages.get(str(data.pop("s3_storage_uuid") or ""))
            data["s3_storage_id"] = storage["id"] if storage else None
        for name in ("enabled", "save_s3", "dump_all"):
            if name in data:
                data[name] = data[name] in (True, 1, "1", "true")
        return data

    def _list_backups(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        items = sorted(
            (b for b in self.backups.values() if b["database_uuid"] == db["uuid"]), key=lambda b: -b["id"]
        )
        return json_response([self._backup_view(b) for b in items])

    def _create_backup(self, request: Request) -> Response:
        body = self.json_body(request)
        data = self._validate_backup(body, creating=True)
        db = self.database_or_404(request.params["uuid"])
        if db["kind"] != "postgresql":
            raise HTTPError(422, "Scheduled backups are not supported for this database type.")
        if not data.get("databases_to_backup"):
            data["databases_to_backup"] = db.get("postgres_db")
        now = self.iso(self.clock())
        backup = {
            "id": self.next_id("backups"),
            "uuid": self.make_uuid(),
            "team_id": 0,
            **BACKUP_DEFAULTS,
            **data,
            "database_type": "App\\Models\\StandalonePostgresql",
            "database_id": db["id"],
            "database_uuid": db["uuid"],
            "created_at": now,
            "updated_at": now,
        }
        self.backups[backup["uuid"]] = backup
        self.touch()
        if body.get("backup_now") in (True, 1, "1", "true"):
            self.run_backup(backup)
        return json_response(
            {"uuid": backup["uuid"], "message": "Backup configuration created successfully."}, 201
        )

    def _update_backup(self, request: Request) -> Response:
        body = self.json_body(request)
        data = self._validate_backup(body, creating=False)
        db = self.database_or_404(request.params["uuid"])
        backup = self._backup_or_404(db, request.params["scheduled_backup_uuid"], "Backup config not found.")
        backup.update(data)
        backup["updated_at"] = self.iso(self.clock())
        self.touch()
        if body.get("backup_now") in (True, 1, "1", "true"):
            self.run_backup(backup)
        return json_response({"message": "Database backup configuration updated"})

    def _delete_backup(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        backup = self._backup_or_404(
            db, request.params["scheduled_backup_uuid"], "Backup configuration not found."
        )
        for execution in [
            e for e in self.executions.values() if e["scheduled_database_backup_id"] == backup["id"]
        ]:
            self._remove_file(execution)
            del self.executions[execution["uuid"]]
        del self.backups[backup["uuid"]]
        self.touch()
        return json_response({"message": "Backup configuration and all executions deleted."})

    def _list_executions(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        backup = self._backup_or_404(
            db, request.params["scheduled_backup_uuid"], "Backup configuration not found."
        )
        runs = sorted(
            (e for e in self.executions.values() if e["scheduled_database_backup_id"] == backup["id"]),
            key=lambda e: -e["id"],
        )
        keys = ("uuid", "filename", "size", "created_at", "message", "status")
        return json_response({"executions": [{k: e.get(k) for k in keys} for e in runs]})

    def _delete_execution(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        backup = self._backup_or_404(
            db, request.params["scheduled_backup_uuid"], "Backup execution not found."
        )
        execution = self.executions.get(request.params["execution_uuid"])
        if execution is None or execution["scheduled_database_backup_id"] != backup["id"]:
            raise HTTPError(404, "Backup execution not found.")
        self._remove_file(execution)
        del self.executions[execution["uuid"]]
        self.touch()
        return json_response({"message": "Backup execution deleted."})

    # ---------------------------------------------------------------- running a backup (DatabaseBackupJob)

    def run_backup(self, backup: dict[str, Any]) -> list[dict[str, Any]]:
        """Create an execution per database (``running``) and dump them in a thread; the executions."""
        db = self.databases.get(backup["database_uuid"]) or {}
        names = [n.strip() for n in str(backup.get("databases_to_backup") or "").split(",") if n.strip()]
        folder = (
            self.data_dir
            / "backups"
            / "databases"
            / TEAM_DIR
            / f"{slug(str(db.get('name', 'database')))}-{db.get('uuid')}"
        )
        started = []
        for name in names:
            now = self.clock()
            execution = {
                "id": self.next_id("executions"),
                "uuid": self.make_uuid(),
                "scheduled_database_backup_id": backup["id"],
                "backup_uuid": backup["uuid"],
                "status": "running",
                "message": None,
                "size": None,
                "filename": str(PurePosixPath(str(folder)) / f"pg-dump-{name}-{int(now)}.dmp"),
                "database_name": name,
                "finished_at": None,
                "local_storage_deleted": False,
                "s3_storage_deleted": False,
                "s3_uploaded": None,
                "created_at": self.iso(now),
                "updated_at": self.iso(now),
            }
            self.executions[execution["uuid"]] = execution
            started.append(execution)
        self.touch()
        for execution in started:
            threading.Thread(target=self._dump, args=(backup["uuid"], execution["uuid"]), daemon=True).start()
        return started

    def _finish(
        self, execution: dict[str, Any], status: str, message: str | None, size: int | None = None
    ) -> None:
        with self.lock:
            execution.update(status=status, message=message, finished_at=self.iso(self.clock()))
            execution["updated_at"] = execution["finished_at"]
            if size is not None:
                execution["size"] = size
            self.touch()
        self.save()

    def _dump(self, backup_uuid: str, execution_uuid: str) -> None:
        with self.lock:
            backup = copy.deepcopy(self.backups.get(backup_uuid) or {})
            execution = self.executions.get(execution_uuid)
            db = copy.deepcopy(self.databases.get(backup.get("database_uuid", "")) or {})
        if execution is None or not backup:
            return
        if self.runtime is None:
            self._finish(
                execution, "failed", "The server has no Docker runtime: nothing to dump (simulated stand-in)."
            )
            return
        user = str(db.get("postgres_user"))
        command = ["pg_dump", "--format=custom", "--no-acl", "--no-owner", "--username", user]
        command.append(str(execution["database_name"]))
        try:
            code, out, err = self.runtime.docker.exec(
                db["uuid"], command, timeout=float(backup.get("timeout") or 3600)
            )
        except Exception as exc:  # the container is gone, the socket failed: the execution fails, says why
            self._finish(execution, "failed", f"{type(exc).__name__}: {exc}")
            return
        if code != 0:
            self._finish(
                execution, "failed", err.decode(errors="replace").strip()[-2000:] or f"pg_dump exited {code}"
            )
            return
        path = Path(execution["filename"])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(out)
        except OSError as exc:
            self._finish(execution, "failed", f"writing {path} failed: {exc}")
            return
        message = err.decode(errors="replace").strip() or None
        s3 = (
            self.s3_storages.get(self._s3_uuid(backup.get("s3_storage_id")))
            if backup.get("save_s3")
            else None
        )
        if s3 is not None:
            error = self._upload(s3)
            with self.lock:
                execution["s3_uploaded"] = error is None
            if error:
                warning = f"Warning: S3 upload failed: {error}"
                message = f"{message}\n\n{warning}" if message else warning
        self._finish(execution, "success", message, size=len(out))
        self._apply_retention(backup)

    def _s3_uuid(self, storage_id: Any) -> str:
        return next((u for u, s in self.s3_storages.items() if s["id"] == storage_id), "")

    @staticmethod
    def _upload(storage: Mapping[str, Any]) -> str | None:
        """The stand-in has no S3 client: it reaches the endpoint or says why not (Coolify's own warning)."""
        parts = urlsplit(str(storage.get("endpoint") or ""))
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname or "", port), timeout=5):
                pass
        except OSError as exc:
            return f"could not reach {storage.get('endpoint')}: {exc}"
        return "the rehearsal's stand-in does not upload to S3 (no S3 client on the server)"

    def _apply_retention(self, backup: Mapping[str, Any]) -> None:
        keep = int(backup.get("database_backup_retention_amount_locally") or 0)
        if keep <= 0:
            return
        with self.lock:
            done = sorted(
                (
                    e
                    for e in self.executions.values()
                    if e["scheduled_database_backup_id"] == backup["id"]
                    and e["status"] == "success"
                    and not e["local_storage_deleted"]
                ),
                key=lambda e: -e["id"],
            )
            for old in done[keep:]:
                self._remove_file(old)
                old["local_storage_deleted"] = True
            self.touch()

    @staticmethod
    def _remove_file(execution: Mapping[str, Any]) -> None:
        with contextlib.suppress(OSError):
            Path(str(execution.get("filename") or "")).unlink(missing_ok=True)

    # ---------------------------------------------------------------- S3 storages

    def _s3_view(self, storage: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in storage.items() if k not in (*S3_HIDDEN, "id")}

    def _s3_or_404(self, storage_uuid: str) -> dict[str, Any]:
        storage = self.s3_storages.get(storage_uuid)
        if storage is None:
            raise HTTPError(404, "S3 storage not found.")
        return storage

    def _validate_s3(self, body: Mapping[str, Any], creating: bool) -> dict[str, Any]:
        required = "|required" if creating else ""
        rules = {
            "name": f"string|max:255{required}",
            "description": "string|nullable",
            "endpoint": f"string{required}",
            "bucket": f"string{required}",
            "region": f"string{required}",
            "key": f"string{required}",
            "secret": f"string{required}",
            "is_usable": "boolean",
        }
        self.check_body(body, rules)
        endpoint = body.get("endpoint")
        if endpoint is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", str(endpoint)):
            raise HTTPError(
                422,
                "Validation failed.",
                extra={"errors": {"endpoint": ["The endpoint field must be a valid URL."]}},
            )
        return {k: body[k] for k in S3_FIELDS if k in body}

    def _list_s3(self, request: Request) -> Response:
        return json_response(
            [self._s3_view(s) for s in sorted(self.s3_storages.values(), key=lambda s: s["id"])]
        )

    def _create_s3(self, request: Request) -> Response:
        data = self._validate_s3(self.json_body(request), creating=True)
        now = self.iso(self.clock())
        storage = {
            "id": self.next_id("s3_storages"),
            "uuid": self.make_uuid(),
            "description": None,
            "is_usable": False,
            "team_id": 0,
            **data,
            "created_at": now,
            "updated_at": now,
        }
        self.s3_storages[storage["uuid"]] = storage
        self.touch()
        return json_response({"uuid": storage["uuid"]}, 201)

    def _get_s3(self, request: Request) -> Response:
        return json_response(self._s3_view(self._s3_or_404(request.params["uuid"])))

    def _update_s3(self, request: Request) -> Response:
        storage = self._s3_or_404(request.params["uuid"])
        storage.update(self._validate_s3(self.json_body(request), creating=False))
        storage["updated_at"] = self.iso(self.clock())
        self.touch()
        return json_response({"uuid": storage["uuid"]})

    def _delete_s3(self, request: Request) -> Response:
        storage = self._s3_or_404(request.params["uuid"])
        del self.s3_storages[storage["uuid"]]
        self.touch()
        return json_response({"message": "S3 storage deleted."})

    # ---------------------------------------------------------------- logs

    def _logs(self, resource_uuid: str, request: Request, what: str) -> Response:
        if not str(self.status_of(resource_uuid, False)).startswith("running"):
            raise HTTPError(400, f"{what} is not running.")
        lines = log_lines(request.arg("lines"))
        stamps = flag(request.arg("show_timestamps"))
        if self.runtime is not None:
            text = self.runtime.docker.logs(resource_uuid, tail=lines, timestamps=stamps)
        else:  # simulated: what its deployments said
            entries = [
                line
                for d in sorted(self.deployments.values(), key=lambda d: d["id"])
                if d.get("application_uuid") == resource_uuid
                for line in _deployment_lines(d, stamps)
            ]
            text = "\n".join(entries[-lines:])
        return json_response({"logs": _strip_ansi(text)})

    def _application_logs(self, request: Request) -> Response:
        app = self.application_or_404(request.params["uuid"])
        return self._logs(app["uuid"], request, "Application")

    def _database_logs(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        return self._logs(db["uuid"], request, "Database")

    # ---------------------------------------------------------------- application updates, restarts

    def _update_application(self, request: Request) -> Response:
        app = self.application_or_404(request.params["uuid"])
        body = self.json_body(request)
        self.check_body(body, APP_UPDATE_RULES)
        tag = body.get("docker_registry_image_tag")
        if tag is not None and not DOCKER_TAG.fullmatch(str(tag)):
            raise HTTPError(
                422,
                "Validation failed.",
                extra={
                    "errors": {
                        "docker_registry_image_tag": [
                            "Docker registry image tag contains invalid characters."
                        ]
                    }
                },
            )
        ports = body.get("ports_exposes")
        if ports is not None and not all(p.strip().isdigit() for p in str(ports).split(",")):
            raise HTTPError(
                422,
                "Validation failed.",
                extra={
                    "errors": {
                        "ports_exposes": "The ports_exposes should be a comma separated list of numbers."
                    }
                },
            )
        changes = {k: v for k, v in body.items() if k != "instant_deploy"}
        with self.lock:
            for key, value in HEALTH_DEFAULTS.items():
                app.setdefault(key, value)
            app.update(changes)
            if "health_check_enabled" in changes:
                self.lifecycle(app["uuid"]).healthy = (
                    "running:healthy" if app["health_check_enabled"] else "running:unknown"
                )
            app["updated_at"] = self.iso(self.clock())
            self.touch()
        if body.get("instant_deploy") in (True, 1, "1", "true"):
            self.queue_deployment(app, force=False, webhook=False)
        return json_response({"uuid": app["uuid"]})

    def _restart_database(self, request: Request) -> Response:
        db = self.database_or_404(request.params["uuid"])
        if self.runtime is not None:
            self.runtime.restart(db["uuid"])
        else:
            self.lifecycle(db["uuid"]).start(self.clock())
        self.touch()
        return json_response({"message": "Database restaring request queued."})  # sic, as Coolify says it


def _deployment_lines(deployment: Mapping[str, Any], stamps: bool) -> list[str]:
    import json

    try:
        entries = json.loads(deployment.get("logs") or "[]")
    except ValueError:
        return []
    return [
        (f"{e.get('timestamp')} " if stamps else "") + str(e.get("output", ""))
        for e in entries
        if not e.get("hidden")
    ]


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _strip_ansi(text: str) -> str:
    """``removeAnsiColors``: Coolify answers logs without terminal colours."""
    return _ANSI.sub("", text)
