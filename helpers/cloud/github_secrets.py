"""GitHub: the app repository's name, and its Actions secrets (tasks 2.13 and 2.17), with PyGithub.

The repository is ``owner/name`` from the task's parameter, else ``GITHUB_REPOSITORY``, else the app
repository's ``origin`` remote on github.com (:func:`repository_name`). The client and its errors are in
:mod:`helpers.clients.github`.

Secrets, idempotently. GitHub never gives a secret's value back, so "is it already set to this value?" cannot
be asked. The runbook keeps, per secret, a *fingerprint* of the value it set, an HMAC-SHA256 keyed with a
random local key (``RUNBOOK_FINGERPRINT_SECRET`` in the git-ignored secrets file, made on first use), and the
``updated_at`` GitHub reported, in the non-secret state file (``.work/state/phase2.json``, key ``github``).
A secret is written (sealed with the repository's public key by PyGithub, PyNaCl's sealed box) when it is
missing on GitHub, when it has no fingerprint (set by someone else, or the record was lost), when the value
changed (another fingerprint), or when GitHub's ``updated_at`` moved (changed outside the runbook);
otherwise nothing is sent. A keyed HMAC, not a plain hash: without the local key nobody can test guesses of
a value against the state file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.app import workflow
from helpers.clients import coolify
from helpers.clients.errors import InvalidRequest
from helpers.clients.github import TOKEN_NAME, VENDOR, api_url, calling, connect, get_repo, iso
from helpers.core import secrets, state, steps
from helpers.core.settings import env
from helpers.core.steps import StepResult

REPOSITORY_ENV = "GITHUB_REPOSITORY"
FINGERPRINT_KEY = "RUNBOOK_FINGERPRINT_SECRET"
STATE = "phase2"
STATE_KEY = "github"
SECRET_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# Where tasks 2.14/2.15 record the applications they create: {"web": {"uuid": ...}, "worker": {"uuid": ...}}.
APPLICATIONS_KEY = "applications"


# --------------------------------------------------------------------------- the repository


def origin_repository(app_dir: str | os.PathLike[str] | None) -> str | None:
    """``owner/name`` of the app repository's ``origin`` remote when it is on github.com."""
    if not app_dir or not Path(app_dir).is_dir():
        return None
    proc = subprocess.run(
        ["git", "-C", str(app_dir), "remote", "get-url", "origin"], capture_output=True, text=True
    )
    m = re.search(r"github\.com[:/]([^/\s]+)/([^/\s]+?)(?:\.git)?/?$", proc.stdout.strip())
    return f"{m.group(1)}/{m.group(2)}" if proc.returncode == 0 and m else None


def repository_name(explicit: str = "", app_dir: str | os.PathLike[str] | None = None) -> str:
    """The app's GitHub repository: the parameter, else ``GITHUB_REPOSITORY``, else the ``origin`` remote."""
    value = (explicit or env.github_repository or origin_repository(app_dir) or "").strip()
    value = value.removeprefix("https://github.com/").removesuffix(".git").strip("/")
    if not value:
        raise InvalidRequest(
            "no GitHub repository given",
            vendor=VENDOR,
            hint="set the parameter repository (or the environment variable GITHUB_REPOSITORY) to the app's "
            "repository as owner/name, e.g. my-team/demo-app, or add it as the app's git remote 'origin'",
        )
    if not workflow.REPOSITORY.match(value):
        raise InvalidRequest(
            f"repository {value!r} is not owner/name",
            vendor=VENDOR,
            hint="write it as owner/name, e.g. my-team/demo-app (no URL, no .git)",
        )
    return value


# --------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class Wanted:
    """One repository secret: its value, or ``None`` with the reason it is not known yet."""

    name: str
    value: str | None
    source: str  # where the value comes from (shown; never the value)
    missing: str = ""  # why there is no value yet, and which task provides it


def check_name(name: str) -> str:
    if not SECRET_NAME.match(name) or name.startswith("GITHUB_"):
        raise InvalidRequest(
            f"{name!r} cannot be a GitHub Actions secret name",
            vendor=VENDOR,
            hint="use capital letters, digits and underscores, not starting with a digit or GITHUB_",
        )
    return name


def fingerprint_key(create: bool) -> bytes | None:
    """The local HMAC key (the secrets file); made when ``create`` and absent."""
    if secrets.has(FINGERPRINT_KEY):
        return bytes.fromhex(secrets.get(FINGERPRINT_KEY))
    if not create:
        return None
    value = os.urandom(32).hex()
    secrets.put(FINGERPRINT_KEY, value)
    return bytes.fromhex(value)


def fingerprint(key: bytes, repository: str, name: str, value: str) -> str:
    """HMAC-SHA256 of the value, bound to the repository and secret name (hex, 64 characters)."""
    message = f"{repository.lower()}\0{name}\0{value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def remote_secrets(repo: Any) -> dict[str, dict[str, str]]:
    """``{name: {"created_at", "updated_at"}}`` of the repository's Actions secrets (never values)."""
    with calling("listing the repository's secrets", repo.full_name):
        return {
            s.name: {"created_at": iso(s.created_at), "updated_at": iso(s.updated_at)}
            for s in repo.get_secrets()
        }


def recorded(repository: str) -> dict[str, dict[str, str]]:
    """What the runbook recorded per secret it set: ``{name: {"hmac", "updated_at"}}``."""
    section = state.get(STATE, STATE_KEY) or {}
    if str(section.get("repository", "")).lower() != repository.lower():
        return {}
    return {e["name"]: e for e in section.get("stored", []) if isinstance(e, Mapping) and e.get("name")}


def _record(repository: str, entries: Mapping[str, Mapping[str, str]]) -> None:
    section = dict(state.get(STATE, STATE_KEY) or {})
    if str(section.get("repository", "")).lower() != repository.lower():
        section = {}
    section.update({"repository": repository, "api_url": api_url()})
    section["stored"] = [
        {"name": n, **{k: v for k, v in e.items() if k != "name"}} for n, e in sorted(entries.items())
    ]
    state.update(STATE, **{STATE_KEY: section})


def plan_secret(
    name: str, fp: str | None, remote: Mapping[str, Mapping[str, str]], mine: Mapping[str, Mapping[str, str]]
) -> tuple[bool, str]:
    """(needs writing, why) for one secret whose value has fingerprint ``fp`` (None: no local key yet)."""
    if name not in remote:
        return True, "not set on GitHub: create it"
    entry = mine.get(name)
    if entry is None or fp is None:
        return True, "exists on GitHub, but the runbook has no fingerprint of its value: set it again"
    if not hmac.compare_digest(str(entry.get("hmac", "")), fp):
        return True, "the value changed since the runbook set it: update it"
    if entry.get("updated_at") != remote[name].get("updated_at"):
        return True, "changed on GitHub since the runbook set it: set it again"
    return False, "set, and unchanged since the runbook set it (fingerprint and GitHub's updated_at match)"


def ensure_secrets(repo: Any, wanted: Sequence[Wanted], dry_run: bool = False) -> list[StepResult]:
    """Create or update each secret whose value is known, only when needed; record fingerprints.

    Values are sealed with the repository's public key by PyGithub (``repo.create_secret``) and never
    printed. A secret whose value is not known yet is ``skipped`` with the reason (which task provides it).
    """
    repository = repo.full_name
    for w in wanted:
        check_name(w.name)
    remote = remote_secrets(repo)
    mine = dict(recorded(repository))
    key = fingerprint_key(create=not dry_run)
    results = []
    for w in wanted:
        step = f"secret {w.name}"
        if w.value is None:
            results.append(steps.skipped(step, w.missing or "no value yet"))
            continue
        fp = fingerprint(key, repository, w.name, w.value) if key else None
        needed, why = plan_secret(w.name, fp, remote, mine)
        if not needed:
            results.append(steps.ok(step, f"{why}; value from {w.source}"))
            continue
        if dry_run:
            results.append(steps.changed(step, f"{why}; value from {w.source}", dry_run=True))
            continue
        with calling(f"setting the secret {w.name}", repository):
            repo.create_secret(w.name, w.value)
            after = repo.get_secret(w.name)
        assert fp is not None  # a key exists outside dry-run
        mine[w.name] = {"hmac": fp, "updated_at": iso(after.updated_at)}
        _record(repository, mine)
        verb = "created" if w.name not in remote else "updated"
        results.append(steps.changed(step, f"{verb} (sealed with the repository's public key): {why}"))
    return results


def check_secrets(check: Any, repo: Any, wanted: Sequence[Wanted], dry_run: bool = False) -> list[Wanted]:
    """Task 2.13's verification, read back from GitHub: the repository's public key can be read (secrets are
    sealed with it); in a real run each secret with a value is listed by GitHub (names only) and the runbook's
    fingerprint record matches GitHub's ``updated_at``. Returns the secrets still pending (no value yet)."""
    with calling("reading the repository's public key", repo.full_name):
        key = check.call(
            "the repository's public key can be read (secrets are sealed with it)",
            lambda: f"key_id {repo.get_public_key().key_id}",
            hint="the token needs Secrets: read and write on the repository",
        )
    if not key:
        return [w for w in wanted if w.value is None]
    remote = remote_secrets(repo)
    mine = recorded(repo.full_name)
    hkey = fingerprint_key(create=False)
    for w in wanted:
        if w.value is None or dry_run:
            continue
        present = w.name in remote
        check(
            f"{w.name} exists in {repo.full_name}",
            present,
            remote.get(w.name, {}).get("updated_at", "absent"),
            hint="run task 2.13 again without dry_run",
        )
        entry = mine.get(w.name) or {}
        fp = fingerprint(hkey, repo.full_name, w.name, w.value) if hkey else None
        same = (
            present
            and fp is not None
            and hmac.compare_digest(str(entry.get("hmac", "")), fp)
            and entry.get("updated_at") == remote[w.name]["updated_at"]
        )
        check(
            f"{w.name} holds the runbook's current value",
            same,
            "fingerprint and GitHub's updated_at match" if same else "no matching fingerprint record",
            hint="run task 2.13 again: it sets the secret when the record does not match",
        )
    return [w for w in wanted if w.value is None]


# --------------------------------------------------------------------------- the deploy workflow's secrets


def app_uuid(app: str) -> str | None:
    """The Coolify application UUID recorded by task 2.14 (web) / 2.15 (worker), if any."""
    apps = state.get(STATE, APPLICATIONS_KEY) or {}
    entry = apps.get(app) if isinstance(apps, Mapping) else None
    return str(entry["uuid"]) if isinstance(entry, Mapping) and entry.get("uuid") else None


def deploy_secrets(token_secret: str = "COOLIFY_API_TOKEN") -> list[Wanted]:
    """The values of :data:`helpers.app.workflow.DEPLOY_SECRETS`, from the runbook's secrets and state.

    ``COOLIFY_URL`` is the dashboard task 2.5 recorded; the token is the runbook secret ``token_secret``
    (a deploy-only Coolify token is better: see task 2.13); the app UUIDs exist once 2.14/2.15 created the
    apps (before that they are pending, and task 2.17 sets them).
    """
    out = []
    try:
        url: str | None = coolify.dashboard_of(coolify.api_url())
        missing = ""
    except LookupError as exc:
        url, missing = None, f"the Coolify address is not known yet ({exc})"
    out.append(Wanted(workflow.COOLIFY_URL_SECRET, url, "task 2.5's record (Coolify's dashboard)", missing))
    token = secrets.get(token_secret) if secrets.has(token_secret) else None
    out.append(
        Wanted(
            workflow.COOLIFY_TOKEN_SECRET,
            token,
            f"the runbook secret {token_secret}",
            ""
            if token
            else f"the runbook secret {token_secret} is not set (task 2.6 makes the Coolify token)",
        )
    )
    for app, name in workflow.APP_UUID_SECRETS.items():
        value = app_uuid(app)
        creator = "2.14" if app == "web" else "2.15"
        out.append(
            Wanted(
                name,
                value,
                f"the {app} application task {creator} created",
                ""
                if value
                else f"the {app} app does not exist yet: task {creator} creates it, task 2.17 sets this",
            )
        )
    return out


def sync_deploy_secrets(sync: bool, repository: str, dry_run: bool = False) -> list[StepResult]:
    """Task 2.17: set the deploy workflow's secrets that are known now (the apps' UUIDs, after 2.14/2.15).

    Only when ``sync`` is on, ``GITHUB_TOKEN`` is set and the repository is known; otherwise one ``skipped``
    step says which of them is missing (task 2.13, run again later, sets them too).
    """
    if sync and secrets.has(TOKEN_NAME) and repository:
        return ensure_secrets(get_repo(connect(), repository), deploy_secrets(), dry_run)
    why = "sync_github=False" if not sync else f"{TOKEN_NAME} or the repository is not set"
    return [steps.skipped("GitHub secrets of the deploy workflow", f"{why}: run task 2.13 again later")]
