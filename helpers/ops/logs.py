"""The last lines of production's logs: web, worker, PostgreSQL and Redis, scrubbed, errors marked.

Coolify's log endpoints (``GET /applications/{uuid}/logs``, ``GET /databases/{uuid}/logs``: ``docker logs
-n <lines> --timestamps`` of the container, read by Coolify on the server) give the running containers'
lines. A container that is not running has no log there (Coolify answers "... is not running."), yet its
last lines say why it stopped: then they are read over SSH with ``docker logs``, which works for a stopped
container too.

Every line goes through :func:`helpers.core.secrets.scrub` before it is shown or kept (connection URLs
with passwords, tokens). ``since`` keeps the lines of the last minutes/hours (``15m``, ``2h``, ``1d``) or
after an ISO time; ``pattern`` keeps the lines matching a regular expression (case-insensitive). Lines
that look like errors (``error``, ``fatal``, ``exception``, ``traceback``, ``panic``, ``failed``) are marked.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from helpers.clients.coolify import Client
from helpers.clients.errors import ApiError
from helpers.core import secrets
from helpers.ops import common

ERROR = re.compile(r"\b(error|fatal|exception|traceback|panic|failed|critical|unhandled)\b", re.IGNORECASE)
STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))\s?")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MARK = "❗ "


@dataclass(frozen=True)
class Source:
    service: str  # web, worker, postgresql, redis
    kind: str  # application | database
    uuid: str


@dataclass
class LogBlock:
    source: Source
    lines: list[str] = field(default_factory=list)
    via: str = "Coolify API"
    note: str = ""  # why the lines come from elsewhere, or none came

    @property
    def errors(self) -> list[str]:
        return [line for line in self.lines if line.startswith(MARK)]

    def text(self) -> str:
        return "\n".join(self.lines) if self.lines else f"(no lines{': ' + self.note if self.note else ''})"


def sources(services: Sequence[str] = ("web", "worker", "postgresql", "redis")) -> list[Source]:
    """The production services to read, from phase 2's records."""
    out = []
    for name in services:
        if name in common.ROLES:
            out.append(Source(name, "application", common.application(name)["uuid"]))
        elif name in common.KINDS:
            out.append(Source(name, "database", common.database(name)["uuid"]))
        else:
            raise ValueError(f"unknown service {name!r}: choose among web, worker, postgresql, redis")
    return out


def since_time(since: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """``15m`` / ``2h`` / ``1d`` before now, or an ISO time; None for empty."""
    since = since.strip()
    if not since:
        return None
    match = DURATION.match(since)
    if match:
        return (now or common.now()) - dt.timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)])
    parsed = common.parse_time(since)
    if parsed is None:
        raise ValueError(
            f"since {since!r}: give a duration (15m, 2h, 1d) or an ISO time (2026-12-01T08:00:00Z)"
        )
    return parsed


def select(raw: str, since: dt.datetime | None = None, pattern: str = "", lines: int = 100) -> list[str]:
    """Scrub, filter by time and pattern, mark errors; the last ``lines`` that remain."""
    wanted = re.compile(pattern, re.IGNORECASE) if pattern else None
    out = []
    for line in secrets.scrub(raw).splitlines():
        if not line.strip():
            continue
        stamp = STAMP.match(line)
        if since is not None and stamp:
            when = common.parse_time(stamp.group(1))
            if when is not None and when < since:
                continue
        if wanted is not None and not wanted.search(line):
            continue
        out.append(MARK + line if ERROR.search(line) else line)
    return out[-lines:] if lines > 0 else out


def docker_logs(remote: Any, container: str, lines: int) -> str:
    """``docker logs --timestamps --tail N`` on the server (also for a stopped container)."""
    out = remote.run(
        f"docker logs --timestamps --tail {int(lines)} {shlex.quote(container)} 2>&1", check=False
    )
    if not out.ok:
        raise LookupError(f"docker logs {container}: {(out.stderr or out.stdout).strip()[:200]}")
    return out.stdout


def read(
    client: Client,
    source: Source,
    lines: int = 100,
    since: str = "",
    pattern: str = "",
    remote: Any = None,
) -> LogBlock:
    """The block of one service (see the module docstring). ``remote``: the SSH session, for a stopped one."""
    after = since_time(since)
    fetch = lines if not (after or pattern) else min(max(lines * 20, 1000), 10000)  # filter from more lines
    block = LogBlock(source)
    try:
        raw = (
            client.application_logs(source.uuid, fetch)
            if source.kind == "application"
            else client.database_logs(source.uuid, fetch)
        )
    except ApiError as exc:
        block.note = f"Coolify: {getattr(exc, 'api_message', '') or exc}"
        if remote is None:
            return block
        try:
            raw = docker_logs(remote, source.uuid, fetch)
        except LookupError as err:
            block.note += f"; {err}"
            return block
        block.via = "docker logs over SSH"
    block.lines = select(raw, after, pattern, lines)
    return block


def summary_rows(blocks: Sequence[LogBlock]) -> list[tuple[str, str, str, str]]:
    return [
        (b.source.service, str(len(b.lines)), str(len(b.errors)), b.via + (f" ({b.note})" if b.note else ""))
        for b in blocks
    ]


def check_logs(check: Any, blocks: Sequence[LogBlock]) -> None:
    """Each service's lines were read (from Coolify, or over SSH for a stopped container), and scrubbed."""
    for block in blocks:
        check(
            f"{block.source.service}: logs read",
            bool(block.lines) or not block.note,
            f"{len(block.lines)} lines via {block.via}" + (f"; {block.note}" if block.note else ""),
            hint="the container has no log to show: is it deployed (task 2.17), does SSH work (task 2.3)? "
            "`runbook doctor phase2` says which",
        )
    check.note(
        "scrubbed",
        f"every line went through the secret scrubber ({len(secrets.known_values())} known values)",
    )
