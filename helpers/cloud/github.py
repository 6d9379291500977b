"""GitHub: the app repository's Actions secrets (task 2.13) and its workflow runs (2.17, 2.18), with PyGithub.

Configuration, never code paths: the API address is ``GITHUB_API_URL`` (default ``https://api.github.com``;
the rehearsal points it at :mod:`helpers.rehearse.github`), the repository is ``owner/name`` from the task's
parameter, else ``GITHUB_REPOSITORY``, else the app repository's ``origin`` remote on github.com. The token is
the secret ``GITHUB_TOKEN`` (:mod:`helpers.core.secrets`): a fine-grained token on that one repository with
*Secrets: read and write* and *Actions: read* (*Metadata: read* comes with it).

Errors come back as :class:`GitHubError` with the next step: 401 (token wrong or expired), 403 (a permission
missing, or a rate limit), 404 (no such repository, or the token cannot see it: GitHub answers 404 for
both), 422 (the API refused a field), 429 and secondary limits (retried after ``retry-after``; only then an
error), and a server that cannot be reached.

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
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from helpers.app import workflow
from helpers.core import secrets, state, steps
from helpers.core.settings import env
from helpers.core.steps import StepResult

DEFAULT_API_URL = "https://api.github.com"
TOKEN_NAME = "GITHUB_TOKEN"
REPOSITORY_ENV = "GITHUB_REPOSITORY"
FINGERPRINT_KEY = "RUNBOOK_FINGERPRINT_SECRET"
STATE = "phase2"
STATE_KEY = "github"
SECRET_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
TOKEN_URL = "https://github.com/settings/personal-access-tokens/new"
TOKEN_PERMISSIONS = ("Secrets: read and write", "Actions: read", "Metadata: read (always included)")
# Where tasks 2.14/2.15 record the applications they create: {"web": {"uuid": ...}, "worker": {"uuid": ...}}.
APPLICATIONS_KEY = "applications"


def api_url() -> str:
    return (env.github_api_url or DEFAULT_API_URL).rstrip("/")


def token_help() -> str:
    return (
        f"create a fine-grained personal access token at {TOKEN_URL}: repository access 'Only select "
        f"repositories' (the app's), permissions {', '.join(TOKEN_PERMISSIONS)}; store it as "
        f"{TOKEN_NAME}=... in {secrets.secrets_file()} (git-ignored) or export it; never as a notebook "
        "parameter"
    )


# --------------------------------------------------------------------------- errors


class GitHubError(RuntimeError):
    """The API answered an error (or could not be reached); ``hint`` is the next step."""

    def __init__(self, message: str, status: int = 0, hint: str = ""):
        self.status = status
        self.hint = hint
        super().__init__(f"{message}. Next step: {hint}" if hint else message)


def _message(data: Any) -> str:
    if isinstance(data, Mapping):
        text = str(data.get("message") or "").strip()
        doc = data.get("documentation_url")
        return f"{text} ({doc})" if doc else text
    return str(data or "").strip()


def translate(exc: BaseException, what: str, repository: str = "") -> GitHubError:
    """A PyGithub / requests exception as a :class:`GitHubError` that says what to do."""
    from github import GithubException, RateLimitExceededException
    from requests import exceptions as rex

    repo = repository or "the repository"
    if isinstance(exc, GithubException):
        status, said = exc.status, _message(exc.data)
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        if isinstance(exc, RateLimitExceededException) or (
            status in (403, 429) and ("rate limit" in said.lower() or "retry-after" in headers)
        ):
            reset = headers.get("x-ratelimit-reset")
            when = time.strftime("%H:%M:%S", time.localtime(int(reset))) if reset and reset.isdigit() else ""
            return GitHubError(
                f"{what}: GitHub's rate limit stopped the runbook (HTTP {status}: {said})",
                status,
                f"wait{' until ' + when if when else ' a few minutes'} and run the task again; nothing is "
                "half-done, every step is idempotent",
            )
        if status == 401:
            return GitHubError(f"{what}: GitHub refused the token (401: {said})", 401, token_help())
        if status == 403:
            return GitHubError(
                f"{what}: the token may not do this (403: {said})",
                403,
                f"give the token access to {repo} with {', '.join(TOKEN_PERMISSIONS)}",
            )
        if status == 404:
            return GitHubError(
                f"{what}: {repo} was not found at {api_url()} (404: {said})",
                404,
                "check the repository name (owner/name) and that the token's repository access includes it: "
                "GitHub answers 404, not 403, when a token cannot see a private repository",
            )
        if status == 422:
            return GitHubError(
                f"{what}: GitHub refused the request (422: {said})", 422, "see the message above"
            )
        if status == 429 or status >= 500:
            return GitHubError(
                f"{what}: GitHub answered {status} after the runbook's retries ({said})",
                status,
                "try again in a few minutes (https://www.githubstatus.com)",
            )
        return GitHubError(f"{what}: GitHub answered {status}: {said}", status)
    if isinstance(exc, rex.ConnectionError | rex.Timeout):
        return GitHubError(
            f"{what}: cannot reach {api_url()} ({type(exc).__name__})",
            0,
            "check the network, or GITHUB_API_URL when you rehearse against the stand-in",
        )
    if isinstance(exc, rex.RetryError):
        return GitHubError(f"{what}: GitHub kept failing after the retries ({exc})", 0, "try again later")
    return GitHubError(f"{what}: {type(exc).__name__}: {exc}")


@contextmanager
def calling(what: str, repository: str = "") -> Iterator[None]:
    """Turn PyGithub's exceptions inside the block into :class:`GitHubError` s."""
    from github import GithubException
    from requests import exceptions as rex

    try:
        yield
    except (GithubException, rex.RequestException) as exc:
        raise translate(exc, what, repository) from None


# --------------------------------------------------------------------------- the repository and the client


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
        raise GitHubError(
            "no GitHub repository given",
            hint="set the parameter repository (or the environment variable GITHUB_REPOSITORY) to the app's "
            "repository as owner/name, e.g. my-team/demo-app, or add it as the app's git remote 'origin'",
        )
    if not workflow.REPOSITORY.match(value):
        raise GitHubError(
            f"repository {value!r} is not owner/name",
            hint="write it as owner/name, e.g. my-team/demo-app (no URL, no .git)",
        )
    return value


def connect(
    token: str | None = None,
    base_url: str | None = None,
    retries: int = 4,
    max_wait: float = 120.0,
    timeout: int = 30,
) -> Any:
    """A PyGithub client for ``GITHUB_API_URL`` that retries 429, 5xx and secondary rate limits.

    Retries honour ``retry-after`` (PyGithub's ``GithubRetry``: 403 only when GitHub says it is a rate
    limit). A wait longer than ``max_wait`` seconds is not waited for: it becomes a clear error. Only GET,
    PUT and DELETE are retried: a POST (a workflow dispatch) that failed may have been done.
    """
    from github import Auth, Github, GithubRetry

    retry = GithubRetry(
        total=retries,
        backoff_factor=1.0,
        status_forcelist=[429, 500, 502, 503, 504],
        allowed_methods=frozenset({"GET", "PUT", "DELETE", "HEAD"}),
        raise_on_status=False,
        secondary_rate_wait=min(60.0, max_wait),
        max_rate_limit_wait=max_wait,
    )
    return Github(
        auth=Auth.Token(token or secrets.get(TOKEN_NAME)),
        base_url=base_url or api_url(),
        timeout=timeout,
        retry=retry,
        per_page=100,
    )


def get_repo(gh: Any, repository: str) -> Any:
    """The repository (``GET /repos/{owner}/{name}``), or a :class:`GitHubError` saying what to do."""
    with calling(f"reading the repository {repository}", repository):
        return gh.get_repo(repository)


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
        raise GitHubError(
            f"{name!r} cannot be a GitHub Actions secret name",
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


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value or "")


def remote_secrets(repo: Any) -> dict[str, dict[str, str]]:
    """``{name: {"created_at", "updated_at"}}`` of the repository's Actions secrets (never values)."""
    with calling("listing the repository's secrets", repo.full_name):
        return {
            s.name: {"created_at": _iso(s.created_at), "updated_at": _iso(s.updated_at)}
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
        mine[w.name] = {"hmac": fp, "updated_at": _iso(after.updated_at)}
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
    from helpers.cloud import coolify

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


# --------------------------------------------------------------------------- workflow runs (2.17, 2.18)


def run_summary(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "event": run.event,
        "branch": run.head_branch,
        "sha": (run.head_sha or "")[:12],
        "status": run.status,
        "conclusion": run.conclusion,
        "created_at": _iso(run.created_at),
        "url": run.html_url,
    }


def latest_run(
    repo: Any, workflow_file: str = workflow.WORKFLOW_FILE, branch: str = "main"
) -> dict[str, Any] | None:
    """The newest run of the workflow on ``branch`` (any event), summarised; None when it never ran."""
    with calling(f"reading the runs of {workflow_file}", repo.full_name):
        wf = repo.get_workflow(workflow_file)
        for run in wf.get_runs(branch=branch):
            return run_summary(run)
    return None


def wait_for_run(repo: Any, run_id: int, timeout: float = 1800, poll: float = 15) -> dict[str, Any]:
    """Poll a run until it is completed; returns its summary (raises TimeoutError with where it stands)."""
    deadline = time.monotonic() + timeout
    while True:
        with calling(f"reading workflow run {run_id}", repo.full_name):
            run = repo.get_workflow_run(run_id)
        if run.status == "completed":
            return run_summary(run)
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"workflow run {run_id} is still {run.status} after {timeout:.0f}s; see {run.html_url}"
            )
        time.sleep(poll)
