"""What a rehearsal run did, read from outside: the stand-ins' request logs and the droplet's state.

A repeated run of phase 2 must change nothing. The notebooks' own ``ok``/``changed`` reports say so; this
module checks it without trusting them (issue 12):

* :func:`mutations`: the requests of a run that change something at a vendor: every POST, PUT, PATCH and
  DELETE except the documented read-only POSTs (:data:`READ_ONLY`), and the GETs that act
  (:data:`ACTING_GETS`: Coolify's webhook-style routes, which older Coolify releases served with GET);
* :func:`droplet_state`: a digest of the droplet: installed packages, every file under ``/etc`` (content,
  mode, owner), users and groups, ufw's rules, and the containers the droplet's Coolify runs; two
  snapshots are compared with :func:`state_changes`.

:class:`LogReader` reads the stand-ins' logs (``GET /_standin/requests``) and hands out what is new since
its last reading, for the contract check (:mod:`helpers.rehearse.contracts`) and for :func:`mutations`.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from helpers.rehearse.base import MUTATING_METHODS, LoggedRequest

# POSTs that read (a search, a dry run, a validation) and change nothing, with the reason; none of the
# operations the runbook uses is one today. An entry: (stand-in, route template, reason).
READ_ONLY: tuple[tuple[str, str, str], ...] = ()

# GETs that act: Coolify served these with GET before v4.2.0 (coollabsio/coolify 0633b543, "require POST
# for state-changing endpoints"); a GET on them deploys, starts, stops or switches the API.
ACTING_GETS: tuple[tuple[str, str], ...] = tuple(
    ("coolify", f"/api/v1{path}")
    for path in (
        "/deploy",
        "/enable",
        "/disable",
        "/applications/{uuid}/start",
        "/applications/{uuid}/restart",
        "/applications/{uuid}/stop",
        "/databases/{uuid}/start",
        "/databases/{uuid}/stop",
    )
)


def is_mutation(entry: LoggedRequest) -> bool:
    """Whether a logged request asked a vendor to change something (see the module docstring)."""
    if entry.method in MUTATING_METHODS:
        return not any((entry.standin, entry.route) == (s, r) for s, r, _ in READ_ONLY)
    return entry.method == "GET" and (entry.standin.removesuffix("-legacy"), entry.route) in ACTING_GETS


def mutations(entries: Iterable[LoggedRequest]) -> list[LoggedRequest]:
    return [e for e in entries if is_mutation(e)]


def describe(entry: LoggedRequest) -> str:
    return f"{entry.standin} {entry.method} {entry.path} -> {entry.status}"


# --------------------------------------------------------------------------- reading the logs


@dataclass
class LogReader:
    """The request logs of stand-ins reached over HTTP, read incrementally.

    ``urls`` maps a name to the stand-in's base URL (its control API is ``<url>/_standin``). A log that got
    shorter than at the last reading belongs to a restarted stand-in: all of it is new.
    """

    urls: dict[str, str] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)

    def read(self, name: str) -> list[LoggedRequest]:
        import httpx

        from helpers.rehearse.contracts import exchanges

        try:
            answer = httpx.get(f"{self.urls[name]}/_standin/requests", timeout=30)
            answer.raise_for_status()
            raw = answer.json()["requests"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise RuntimeError(
                f"could not read the request log of {name} at {self.urls[name]}: {exc}"
            ) from None
        start = self.seen.get(name, 0)
        if len(raw) < start:
            start = 0
        self.seen[name] = len(raw)
        return exchanges(raw[start:])

    def new(self) -> list[LoggedRequest]:
        """Every exchange logged since the last call (all of them the first time)."""
        return [e for name in list(self.urls) for e in self.read(name)]


# --------------------------------------------------------------------------- the droplet's state

# One command per part of the state, run as root in the droplet (sorted, so that order never differs).
STATE_COMMANDS: dict[str, str] = {
    "packages": "dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\\n' | sort",
    "etc": (
        "find /etc -xdev \\( -type f -o -type l -o -type d \\) -printf '%p %y %m %u %g %l\\n' | sort; "
        "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum"
    ),
    "users": "getent passwd | sort; getent group | sort",
    "ufw": "if command -v ufw >/dev/null; then ufw status verbose; else echo 'ufw: not installed'; fi",
}


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def droplet_state(container: str, resource_label: str = "runbook.coolify.resource") -> dict[str, list[str]]:
    """The droplet's state, part by part (see :data:`STATE_COMMANDS`), plus its Coolify's containers.

    Raises ``RuntimeError`` naming the part that could not be read.
    """
    state: dict[str, list[str]] = {}
    for part, command in STATE_COMMANDS.items():
        proc = _docker("exec", container, "sh", "-c", command)
        if proc.returncode != 0:
            raise RuntimeError(f"reading {part} of {container} failed: {proc.stderr.strip()[-300:]}")
        state[part] = proc.stdout.splitlines()
    hostname = _docker("exec", container, "hostname").stdout.strip()
    ids = _docker("ps", "-aq", "--filter", f"label={resource_label}={hostname}").stdout.split()
    fmt = "{{.Name}} {{.Id}} {{.Image}} {{.State.Status}} {{.State.StartedAt}} {{.RestartCount}}"
    lines = _docker("inspect", "-f", fmt, *ids).stdout.splitlines() if ids else []
    state["containers"] = sorted(lines)
    return state


def state_digest(state: Mapping[str, Sequence[str]]) -> str:
    h = hashlib.sha256()
    for part in sorted(state):
        h.update(part.encode() + b"\0" + "\n".join(state[part]).encode() + b"\0")
    return h.hexdigest()


def state_changes(
    before: Mapping[str, Sequence[str]], after: Mapping[str, Sequence[str]], limit: int = 12
) -> list[str]:
    """What differs between two snapshots, line by line (``-`` gone, ``+`` new), per part."""
    out: list[str] = []
    for part in sorted(set(before) | set(after)):
        old, new = set(before.get(part, ())), set(after.get(part, ()))
        gone = sorted(old - new)
        added = sorted(new - old)
        shown = [f"- {line}" for line in gone] + [f"+ {line}" for line in added]
        if shown:
            extra = len(shown) - limit
            out.append(
                f"{part}: "
                + "; ".join(_short(s) for s in shown[:limit])
                + (f"; ... {extra} more" if extra > 0 else "")
            )
    return out


def _short(line: str) -> str:
    return re.sub(r"\s+", " ", line)[:160]


__all__ = [
    "ACTING_GETS",
    "READ_ONLY",
    "STATE_COMMANDS",
    "LogReader",
    "describe",
    "droplet_state",
    "is_mutation",
    "mutations",
    "state_changes",
    "state_digest",
]
