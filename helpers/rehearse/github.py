"""A stateful GitHub REST API stand-in: Actions secrets, workflows and runs (rehearsal of tasks 2.9 to 2.18).

It follows ``shared/refs/github/github-actions-extract.json`` (the OpenAPI extract of
github/rest-api-description for these operations) and answers what the runbook's PyGithub client asks:

* ``GET /repos/{owner}/{repo}`` (PyGithub's repository fetch), ``GET /user``, ``GET /rate_limit``;
* ``GET /repos/{o}/{r}/actions/secrets/public-key``: a real libsodium (Curve25519) key pair per repository,
  made with PyNaCl, ``{key_id, key}``;
* ``GET|PUT|DELETE /repos/{o}/{r}/actions/secrets/{name}``, ``GET /repos/{o}/{r}/actions/secrets``: a ``PUT``
  needs ``{encrypted_value, key_id}``: base64, the current ``key_id`` (else 422), a sealed box that the
  repository's private key opens (else 422); 201 when created, 204 when updated. Names are upper-cased,
  ``[A-Z_][A-Z0-9_]*``, never ``GITHUB_*`` (422). Listing and reading give names and timestamps only;
* ``GET /repos/{o}/{r}/actions/workflows[/{id or file name}]``, ``.../workflows/{id}/runs``,
  ``POST .../workflows/{id}/dispatches`` (204; 422 without a ``workflow_dispatch`` trigger),
  ``GET /repos/{o}/{r}/actions/runs[/{run_id}[/jobs]]`` with the ``branch``, ``event``, ``status`` (a status
  or a conclusion), ``head_sha``, ``actor`` filters, ``POST .../runs/{id}/cancel`` (202, 409 once completed),
  ``POST .../runs/{id}/rerun`` (201);
* pages (``per_page`` ≤ 100, default 30) with a ``Link`` header, as PyGithub follows it;
* errors ``{"message", "documentation_url", "status"}``: 401 ``Bad credentials`` or
  ``Requires authentication``, 403 ``Resource not accessible by personal access token`` (optional
  per-token permissions), 404 ``Not Found``, 400 ``Problems parsing JSON``, 422 for invalid fields;
* ``x-ratelimit-limit/remaining/used/reset/resource`` on every answer; past the hourly limit, 403 ``API rate
  limit exceeded`` with ``x-ratelimit-remaining: 0``; secondary limits (429 or 403 with ``retry-after``) are
  injected as faults (:meth:`~helpers.rehearse.base.StandIn.inject`).

Secret values are never sent back over HTTP; the request log holds only the sealed box, which nothing but
the stand-in's private key opens (never served). Tests read the values in-process with
:meth:`GitHubStandIn.secret_value`: the proof that the client sealed them for this repository's key.

Workflows and runs: GitHub knows a repository's workflows from the files on its default branch and starts runs
on events. Here a *push* is simulated: ``POST /_standin/push {"repository", "branch", "sha"}`` (or
:meth:`GitHubStandIn.push`) reads ``.github/workflows/*.yml`` from the app repository (``--repo-dir``, default
``RUNBOOK_APP_DIR``), registers them and starts a run of every workflow whose ``on.push.branches`` has the
branch. A run is ``queued``, then ``in_progress``, then ``completed`` after ``run_after_polls`` reads each.
Completing a run of the runbook's deploy workflow *emulates its deploy job*: the stand-in decrypts the
repository's ``COOLIFY_*`` secrets and calls ``POST <COOLIFY_URL>/api/v1/deploy?uuid=<app>`` with the token,
exactly like the workflow's curl (loopback addresses only); the run fails when a secret is missing or a call
fails, like on GitHub. With ``--build`` (``build=``) the *build job* runs too, first, in a thread
(:mod:`helpers.rehearse.builder`): the images the workflow names are built from the pushed commit and pushed
to the registry it names (the rehearsal's local one); the run stays ``in_progress`` until they are, the deploy
job runs only after it succeeded, and the run's ``x_rehearsal.images`` lists what was pushed (reference,
digest). Without it, the build jobs succeed unexecuted.
``POST /_standin/outcome {"conclusion": "failure"}`` forces the next completions (tests).

Run it: ``GITHUB_TOKEN=... python -m helpers.rehearse.github --port 8091 --repository team/demo-app``; point
the runbook at it with ``GITHUB_API_URL=http://127.0.0.1:8091``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import json
import os
import re
import secrets as stdlib_secrets
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

from helpers.app import workflow as deploy_workflow
from helpers.core.settings import env
from helpers.rehearse.base import (
    STANDIN_AGENT,
    HTTPError,
    Request,
    Response,
    StandIn,
    cli_parser,
    empty_response,
    int_arg,
    iter_pages,
    json_response,
    serve,
)

DOCS = "https://docs.github.com/rest"
HOUR = 3600.0
API_VERSION = "2022-11-28"
CREATED_AT = "2024-01-01T00:00:00Z"  # the stand-in's accounts and repositories "exist" since then
SECRET_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
MAX_SECRET_BYTES = 48 * 1024
RUN_STATUSES = ("queued", "in_progress", "completed", "requested", "waiting", "pending", "action_required")
CONCLUSIONS = ("success", "failure", "cancelled", "neutral", "skipped", "stale", "timed_out")
PERMISSIONS = ("metadata:read", "secrets:read", "secrets:write", "actions:read", "actions:write")

# The documentation page of each operation (GitHub puts it in every error body).
DOC_PAGES: dict[str, str] = {
    "/repos/{owner}/{repo}": "repos/repos#get-a-repository",
    "/repos/{owner}/{repo}/actions/secrets": "actions/secrets#list-repository-secrets",
    "/repos/{owner}/{repo}/actions/secrets/public-key": "actions/secrets#get-a-repository-public-key",
    "/repos/{owner}/{repo}/actions/secrets/{secret_name}": "actions/secrets#get-a-repository-secret",
    "/repos/{owner}/{repo}/actions/workflows": "actions/workflows#list-repository-workflows",
    "/repos/{owner}/{repo}/actions/workflows/{workflow_id}": "actions/workflows#get-a-workflow",
    "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches": (
        "actions/workflows#create-a-workflow-dispatch-event"
    ),
    "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs": "actions/workflow-runs#list-workflow-runs",
    "/repos/{owner}/{repo}/actions/runs": "actions/workflow-runs#list-workflow-runs-for-a-repository",
    "/repos/{owner}/{repo}/actions/runs/{run_id:int}": "actions/workflow-runs#get-a-workflow-run",
    "/repos/{owner}/{repo}/actions/runs/{run_id:int}/jobs": (
        "actions/workflow-jobs#list-jobs-for-a-workflow-run"
    ),
    "/repos/{owner}/{repo}/actions/runs/{run_id:int}/cancel": "actions/workflow-runs#cancel-a-workflow-run",
    "/repos/{owner}/{repo}/actions/runs/{run_id:int}/rerun": "actions/workflow-runs#re-run-a-workflow",
}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- state


@dataclass
class StoredSecret:
    name: str
    encrypted_value: str  # as sent: the stand-in keeps the sealed box, never a plain copy
    key_id: str
    created_at: float
    updated_at: float


@dataclass
class Workflow:
    id: int
    path: str
    name: str
    text: str
    push_branches: list[str]
    dispatch: bool
    created_at: float
    updated_at: float
    state: str = "active"


@dataclass
class Run:
    id: int
    workflow_id: int
    run_number: int
    event: str
    head_branch: str
    head_sha: str
    actor: str
    created_at: float
    updated_at: float
    status: str = "queued"
    conclusion: str | None = None
    polls: int = 0
    run_attempt: int = 1
    started_at: float | None = None
    completed_at: float | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # what the emulated jobs did (never a secret)
    building: bool = False  # the emulated build job is still running (a thread)
    build_ok: bool | None = None  # its outcome, None before it ran
    images: list[dict[str, Any]] = field(default_factory=list)  # what it pushed: reference, digest, ...


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    private: bool
    private_key: PrivateKey
    key_id: str
    secrets: dict[str, StoredSecret] = field(default_factory=dict)
    workflows: dict[int, Workflow] = field(default_factory=dict)
    runs: dict[int, Run] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def public_key(self) -> str:
        return base64.b64encode(bytes(self.private_key.public_key)).decode("ascii")


def _key_id() -> str:
    return str(stdlib_secrets.randbelow(9 * 10**17) + 10**17)  # GitHub's key ids are long digit strings


def parse_workflow(path: str, text: str) -> tuple[str, list[str], bool]:
    """(name, branches a push runs it on, whether it has ``workflow_dispatch``) of a workflow file."""
    try:
        data = deploy_workflow.load(text)
    except (yaml.YAMLError, ValueError):
        return path, [], False
    on = data.get("on")
    branches: list[str] = []
    dispatch = False
    if isinstance(on, str):
        on = {on: None}
    elif isinstance(on, list):
        on = dict.fromkeys(on)
    if isinstance(on, dict):
        dispatch = "workflow_dispatch" in on
        if "push" in on:
            push = on.get("push") or {}
            branches = [str(b) for b in push.get("branches", ["*"])] if isinstance(push, dict) else ["*"]
    return str(data.get("name") or path), branches, dispatch


def _branch_matches(branch: str, patterns: Sequence[str]) -> bool:
    import fnmatch

    return any(fnmatch.fnmatchcase(branch, p.replace("**", "*")) for p in patterns)


# --------------------------------------------------------------------------- the stand-in


class GitHubStandIn(StandIn):
    name = "github"

    def __init__(
        self,
        tokens: Mapping[str, Iterable[str] | None] | Sequence[str],
        repositories: Sequence[str] = ("team/demo-app",),
        host: str = "127.0.0.1",
        port: int = 0,
        repo_dir: str | os.PathLike[str] | None = None,
        run_after_polls: int = 1,
        rate_limit_per_hour: int = 5000,
        emulate_deploy: bool = True,
        build: Mapping[str, Mapping[str, str]] | None = None,
        login: str = "rehearsal-bot",
        state_file: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        perms = dict(tokens) if isinstance(tokens, Mapping) else dict.fromkeys(tokens)
        super().__init__(tokens=list(perms), host=host, port=port)
        self.permissions: dict[str, frozenset[str] | None] = {}
        for token, granted in perms.items():
            if granted is not None:
                unknown = set(granted) - set(PERMISSIONS)
                if unknown:
                    raise ValueError(f"unknown permissions {sorted(unknown)}; use {', '.join(PERMISSIONS)}")
            self.permissions[token] = None if granted is None else frozenset(granted)
        self.repo_dir = Path(repo_dir) if repo_dir else None
        self.run_after_polls = max(0, run_after_polls)
        self.rate_limit_per_hour = rate_limit_per_hour
        self.emulate_deploy = emulate_deploy
        # None: build jobs are not executed (they succeed); else the emulated build job runs with these
        # extra "build_args" and "labels" (helpers.rehearse.builder)
        self.build = dict(build) if build is not None else None
        self.login = login
        self.clock = clock
        self.state_file = Path(state_file) if state_file else None
        self.forced_conclusion: str | None = None
        self.repos: dict[
            str, Repo
        ] = {}  # lower-cased full name -> repo (GitHub's names are case-insensitive)
        self._ids = itertools.count(int(clock()) % 10**6 * 100 + 1)
        self._calls: dict[str, list[float]] = {}
        if not (self.state_file and self._load()):
            for full_name in repositories:
                self.add_repository(full_name)
        self._register()

    # ---------------------------------------------------------------- repositories

    def add_repository(self, full_name: str, default_branch: str = "main", private: bool = True) -> Repo:
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"repository {full_name!r} must be owner/name")
        repo = Repo(next(self._ids), owner, name, default_branch, private, PrivateKey.generate(), _key_id())
        self.repos[full_name.lower()] = repo
        self._save()
        return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def secret_value(self, full_name: str, name: str) -> str:
        """A secret's decrypted value: in-process only (tests prove the sealing with it), never over HTTP."""
        repo = self.repo(full_name)
        stored = repo.secrets[name.upper()]
        return SealedBox(repo.private_key).decrypt(base64.b64decode(stored.encrypted_value)).decode("utf-8")

    def rotate_key(self, full_name: str) -> str:
        """A new repository key (GitHub rotates them): clients that cached the old key_id get a 422."""
        repo = self.repo(full_name)
        with self.lock:
            repo.private_key, repo.key_id = PrivateKey.generate(), _key_id()
        self._save()
        return repo.key_id

    # ---------------------------------------------------------------- vendor shapes

    def error_body(self, status: int, message: str, code: str | None, request: Request) -> Any:
        page = DOC_PAGES.get(request.route)
        return {
            "message": message if status != 404 else "Not Found",
            "documentation_url": f"{DOCS}/{page}" if page else DOCS,
            "status": str(status),
        }

    def _token(self, request: Request) -> str:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        return token.strip() if scheme.lower() in ("token", "bearer") else ""

    def authenticate(self, request: Request) -> None:
        if not request.header("Authorization"):
            raise HTTPError(401, "Requires authentication")
        token = self._token(request)
        if token not in self.tokens:
            raise HTTPError(401, "Bad credentials")
        granted = self.permissions.get(token)
        needed = self._permission_for(request)
        write_covers_read = (
            bool(needed) and needed.endswith(":read") and needed[:-5] + ":write" in (granted or ())
        )
        if granted is not None and needed and needed not in granted and not write_covers_read:
            raise HTTPError(403, "Resource not accessible by personal access token")

    @staticmethod
    def _permission_for(request: Request) -> str | None:
        route = request.route
        if "/actions/secrets" in route:
            return "secrets:read" if request.method == "GET" else "secrets:write"
        if "/actions/" in route:
            return "actions:read" if request.method == "GET" else "actions:write"
        if route.startswith("/repos/"):
            return "metadata:read"
        return None

    def before(self, request: Request) -> None:
        token = self._token(request)
        now = self.clock()
        with self.lock:
            calls = [t for t in self._calls.get(token, []) if t > now - HOUR]
            if len(calls) >= self.rate_limit_per_hour:
                self._calls[token] = calls
                raise HTTPError(
                    403,
                    "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, "
                    f"please include the request ID {request.request_id}.",
                    headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(calls[0] + HOUR))},
                )
            calls.append(now)
            self._calls[token] = calls

    def decorate(self, request: Request, response: Response) -> None:
        token = self._token(request)
        now = self.clock()
        with self.lock:
            calls = [t for t in self._calls.get(token, []) if t > now - HOUR]
        used = len(calls)
        response.headers.setdefault("x-ratelimit-limit", str(self.rate_limit_per_hour))
        response.headers.setdefault("x-ratelimit-remaining", str(max(0, self.rate_limit_per_hour - used)))
        response.headers.setdefault("x-ratelimit-used", str(used))
        response.headers.setdefault("x-ratelimit-reset", str(int((calls[0] if calls else now) + HOUR)))
        response.headers.setdefault("x-ratelimit-resource", "core")
        response.headers.setdefault("x-github-request-id", request.request_id.upper())
        response.headers.setdefault("x-github-api-version-selected", API_VERSION)
        response.headers.setdefault("x-github-media-type", "github.v3; format=json")
        if request.method in ("PUT", "POST", "DELETE", "PATCH") or request.route.startswith("/repos/"):
            self._save()

    # ---------------------------------------------------------------- helpers

    def _repo_or_404(self, request: Request) -> Repo:
        repo = self.repos.get(f"{request.params['owner']}/{request.params['repo']}".lower())
        if repo is None:
            raise HTTPError(404, "Not Found")
        return repo

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "Problems parsing JSON") from None
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise HTTPError(400, "Problems parsing JSON")
        return body

    def _paged(self, request: Request, key: str, items: list[Any]) -> Response:
        per_page = int_arg(request, "per_page", 30, maximum=100)
        page = int_arg(request, "page", 1)
        chunk, pages = iter_pages(items, page, per_page)
        links = []
        query = {k: v[0] for k, v in request.query.items()}

        def link(n: int, rel: str) -> str:
            return (
                f'<{request.url_for(request.path, {**query, "per_page": per_page, "page": n})}>; rel="{rel}"'
            )

        if page < pages:
            links += [link(page + 1, "next"), link(pages, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        headers = {"link": ", ".join(links)} if links else {}
        return json_response({"total_count": len(items), key: chunk}, headers=headers)

    def _user(self, request: Request) -> dict[str, Any]:
        """``GET /user``: the token's account, as GitHub's ``private-user`` (every required field)."""
        user = self._simple_user(request, self.login, 1, "User")
        return {
            **user,
            "name": "Rehearsal bot",
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": CREATED_AT,
            "updated_at": CREATED_AT,
            "private_gists": 0,
            "total_private_repos": len(self.repos),
            "owned_private_repos": len(self.repos),
            "disk_usage": 0,
            "collaborators": 0,
            "two_factor_authentication": True,
            "user_view_type": "private",
        }

    @staticmethod
    def _simple_user(request: Request, login: str, user_id: int, kind: str) -> dict[str, Any]:
        """GitHub's ``simple-user`` (an actor, a repository's owner): every field the description requires."""
        api = request.url_for(f"/users/{login}")
        return {
            "login": login,
            "id": user_id,
            "node_id": f"{'O' if kind == 'Organization' else 'U'}_{user_id}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"https://github.com/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": kind,
            "user_view_type": "public",
            "site_admin": False,
        }

    def _minimal_repo(self, request: Request, repo: Repo) -> dict[str, Any]:
        """GitHub's ``minimal-repository`` (a run's repository and head_repository): every required field."""
        api = request.url_for(f"/repos/{repo.full_name}")
        owner_id = zlib.crc32(repo.owner.encode()) % 10**7
        templates = {
            "archive_url": "/{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "contributors_url": "/contributors",
            "deployments_url": "/deployments",
            "downloads_url": "/downloads",
            "events_url": "/events",
            "forks_url": "/forks",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "hooks_url": "/hooks",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "languages_url": "/languages",
            "merges_url": "/merges",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "stargazers_url": "/stargazers",
            "statuses_url": "/statuses/{sha}",
            "subscribers_url": "/subscribers",
            "subscription_url": "/subscription",
            "tags_url": "/tags",
            "teams_url": "/teams",
            "trees_url": "/git/trees{/sha}",
        }
        return {
            "id": repo.id,
            "node_id": f"R_{repo.id}",
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self._simple_user(request, repo.owner, owner_id, "Organization"),
            "html_url": f"https://github.com/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": api,
            **{key: api + suffix for key, suffix in templates.items()},
        }

    def _repo_json(self, request: Request, repo: Repo) -> dict[str, Any]:
        """``GET /repos/{owner}/{repo}``: GitHub's ``full-repository``, every required field."""
        return {
            **self._minimal_repo(request, repo),
            "visibility": "private" if repo.private else "public",
            "default_branch": repo.default_branch,
            "clone_url": f"https://github.com/{repo.full_name}.git",
            "git_url": f"git://github.com/{repo.full_name}.git",
            "ssh_url": f"git@github.com:{repo.full_name}.git",
            "svn_url": f"https://github.com/{repo.full_name}",
            "mirror_url": None,
            "homepage": None,
            "language": "TypeScript",
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "size": 0,
            "open_issues": 0,
            "open_issues_count": 0,
            "has_issues": True,
            "has_projects": False,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "archived": False,
            "disabled": False,
            "license": None,
            "pushed_at": CREATED_AT,
            "created_at": CREATED_AT,
            "updated_at": CREATED_AT,
            "network_count": 0,
            "subscribers_count": 0,
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
        }

    # ---------------------------------------------------------------- routes

    def _register(self) -> None:
        r = self.add_route
        repo = "/repos/{owner}/{repo}"
        r("GET", "/user", lambda req: json_response(self._user(req)))
        r("GET", "/rate_limit", self._rate_limit)
        r("GET", repo, lambda req: json_response(self._repo_json(req, self._repo_or_404(req))))
        r("GET", repo + "/actions/secrets", self._list_secrets)
        r("GET", repo + "/actions/secrets/public-key", self._public_key)
        r("GET", repo + "/actions/secrets/{secret_name}", self._get_secret)
        r("PUT", repo + "/actions/secrets/{secret_name}", self._put_secret)
        r("DELETE", repo + "/actions/secrets/{secret_name}", self._delete_secret)
        r("GET", repo + "/actions/workflows", self._list_workflows)
        r("GET", repo + "/actions/workflows/{workflow_id}", self._get_workflow)
        r("POST", repo + "/actions/workflows/{workflow_id}/dispatches", self._dispatch)
        r("GET", repo + "/actions/workflows/{workflow_id}/runs", self._list_runs)
        r("GET", repo + "/actions/runs", self._list_runs)
        r("GET", repo + "/actions/runs/{run_id:int}", self._get_run)
        r("GET", repo + "/actions/runs/{run_id:int}/jobs", self._run_jobs)
        r("POST", repo + "/actions/runs/{run_id:int}/cancel", self._cancel_run)
        r("POST", repo + "/actions/runs/{run_id:int}/rerun", self._rerun)

    def _rate_limit(self, request: Request) -> Response:
        now = self.clock()
        with self.lock:
            calls = [t for t in self._calls.get(self._token(request), []) if t > now - HOUR]
        core = {
            "limit": self.rate_limit_per_hour,
            "used": len(calls),
            "remaining": max(0, self.rate_limit_per_hour - len(calls)),
            "reset": int((calls[0] if calls else now) + HOUR),
        }
        return json_response({"resources": {"core": core}, "rate": core})

    # secrets ---------------------------------------------------------------------------------------

    def _public_key(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        return json_response({"key_id": repo.key_id, "key": repo.public_key})

    @staticmethod
    def _secret_json(s: StoredSecret) -> dict[str, Any]:
        return {"name": s.name, "created_at": iso(s.created_at), "updated_at": iso(s.updated_at)}

    def _list_secrets(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        items = [self._secret_json(repo.secrets[n]) for n in sorted(repo.secrets)]
        return self._paged(request, "secrets", items)

    def _get_secret(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        stored = repo.secrets.get(str(request.params["secret_name"]).upper())
        if stored is None:
            raise HTTPError(404, "Not Found")
        return json_response(self._secret_json(stored))

    def _put_secret(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        name = str(request.params["secret_name"]).upper()
        if not SECRET_NAME.match(name):
            raise HTTPError(
                422,
                "Invalid request.\n\nSecret names can only contain alphanumeric characters ([a-z], [A-Z], "
                "[0-9]) or underscores (_), and must not start with a number.",
            )
        if name.startswith("GITHUB_"):
            raise HTTPError(422, "Invalid request.\n\nSecret names must not start with GITHUB_.")
        body = self._body(request)
        for key in ("encrypted_value", "key_id"):
            if key not in body:
                raise HTTPError(422, f'Invalid request.\n\n"{key}" wasn\'t supplied.')
            if not isinstance(body[key], str):
                raise HTTPError(
                    422, f"Invalid request.\n\nFor 'properties/{key}', {body[key]!r} is not a string."
                )
        value, key_id = body["encrypted_value"], body["key_id"]
        if not BASE64.match(value):
            raise HTTPError(
                422,
                "Invalid request.\n\nFor 'properties/encrypted_value', it does not match the base64 pattern.",
            )
        if key_id != repo.key_id:
            raise HTTPError(
                422,
                "Invalid request.\n\nkey_id does not match the repository's current public key: fetch "
                "GET .../actions/secrets/public-key again and seal the value with that key.",
            )
        sealed = base64.b64decode(value)
        if len(sealed) > MAX_SECRET_BYTES:
            raise HTTPError(422, "Invalid request.\n\nSecrets are limited to 48 KB.")
        try:
            SealedBox(repo.private_key).decrypt(sealed)
        except (CryptoError, binascii.Error, ValueError):
            raise HTTPError(
                422,
                "Invalid request.\n\nencrypted_value is not a libsodium sealed box for this repository's "
                "public key.",
            ) from None
        now = self.clock()
        existing = repo.secrets.get(name)
        if existing is None:
            repo.secrets[name] = StoredSecret(name, value, key_id, now, now)
            return json_response({}, 201)
        existing.encrypted_value, existing.key_id, existing.updated_at = value, key_id, now
        return empty_response(204)

    def _delete_secret(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        if repo.secrets.pop(str(request.params["secret_name"]).upper(), None) is None:
            raise HTTPError(404, "Not Found")
        return empty_response(204)

    # workflows -------------------------------------------------------------------------------------

    def set_workflows(self, full_name: str, files: Mapping[str, str]) -> list[Workflow]:
        """Register workflow files (``{".github/workflows/x.yml": text}``) as on the default branch."""
        repo = self.repo(full_name)
        now = self.clock()
        out = []
        with self.lock:
            for path, text in sorted(files.items()):
                wid = zlib.crc32(f"{repo.full_name}:{path}".encode()) % 10**8 + 10**7
                name, branches, dispatch = parse_workflow(path, text)
                old = repo.workflows.get(wid)
                created = old.created_at if old else now
                updated = now if old is None or old.text != text else old.updated_at
                wf = Workflow(wid, path, name, text, branches, dispatch, created, updated)
                repo.workflows[wid] = wf
                out.append(wf)
        self._save()
        return out

    def _workflows_from_dir(self) -> dict[str, str]:
        if self.repo_dir is None:
            return {}
        folder = self.repo_dir / ".github" / "workflows"
        if not folder.is_dir():
            return {}
        return {
            f".github/workflows/{p.name}": p.read_text(encoding="utf-8")
            for p in sorted(folder.iterdir())
            if p.suffix in (".yml", ".yaml") and p.is_file()
        }

    def _workflow_json(self, request: Request, repo: Repo, wf: Workflow) -> dict[str, Any]:
        return {
            "id": wf.id,
            "node_id": f"W_{wf.id}",
            "name": wf.name,
            "path": wf.path,
            "state": wf.state,
            "created_at": iso(wf.created_at),
            "updated_at": iso(wf.updated_at),
            "url": request.url_for(f"/repos/{repo.full_name}/actions/workflows/{wf.id}"),
            "html_url": f"https://github.com/{repo.full_name}/blob/{repo.default_branch}/{wf.path}",
            "badge_url": f"https://github.com/{repo.full_name}/workflows/{urllib.parse.quote(wf.name)}/badge.svg",
        }

    def _workflow_or_404(self, request: Request, repo: Repo) -> Workflow:
        key = str(request.params["workflow_id"])
        for wf in repo.workflows.values():
            if key == str(wf.id) or key == wf.path.rsplit("/", 1)[-1]:
                return wf
        raise HTTPError(404, "Not Found")

    def _list_workflows(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        items = [
            self._workflow_json(request, repo, wf)
            for wf in sorted(repo.workflows.values(), key=lambda w: w.id)
        ]
        return self._paged(request, "workflows", items)

    def _get_workflow(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        return json_response(self._workflow_json(request, repo, self._workflow_or_404(request, repo)))

    def _dispatch(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        wf = self._workflow_or_404(request, repo)
        body = self._body(request)
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            raise HTTPError(422, 'Invalid request.\n\n"ref" wasn\'t supplied.')
        if not wf.dispatch:
            raise HTTPError(422, "Workflow does not have 'workflow_dispatch' trigger")
        branch = ref.removeprefix("refs/heads/")
        run = self._start_run(repo, wf, "workflow_dispatch", branch, stdlib_secrets.token_hex(20))
        if body.get("return_run_details"):
            return json_response(
                {
                    "workflow_run_id": run.id,
                    "run_url": request.url_for(f"/repos/{repo.full_name}/actions/runs/{run.id}"),
                    "html_url": f"https://github.com/{repo.full_name}/actions/runs/{run.id}",
                }
            )
        return empty_response(204)

    # runs ------------------------------------------------------------------------------------------

    def push(self, full_name: str, branch: str | None = None, sha: str | None = None) -> list[Run]:
        """Simulate ``git push``: take the workflow files from ``repo_dir``, start the runs a push starts."""
        repo = self.repo(full_name)
        files = self._workflows_from_dir()
        if files and (branch or repo.default_branch) == repo.default_branch:
            self.set_workflows(full_name, files)
        branch = branch or repo.default_branch
        sha = sha or stdlib_secrets.token_hex(20)
        with self.lock:
            started = [
                self._start_run(repo, wf, "push", branch, sha)
                for wf in sorted(repo.workflows.values(), key=lambda w: w.id)
                if wf.push_branches and _branch_matches(branch, wf.push_branches)
            ]
        self._save()
        return started

    def _start_run(self, repo: Repo, wf: Workflow, event: str, branch: str, sha: str) -> Run:
        now = self.clock()
        number = 1 + sum(1 for r in repo.runs.values() if r.workflow_id == wf.id)
        run = Run(next(self._ids), wf.id, number, event, branch, sha, self.login, now, now)
        run.jobs = self._plan_jobs(wf)
        repo.runs[run.id] = run
        if self.build is not None and any(j.get("build") for j in run.jobs):
            run.building = True
            threading.Thread(target=self._emulate_build, args=(repo, run, wf.text), daemon=True).start()
        self._advance(repo, run, poll=False)
        return run

    def _emulate_build(self, repo: Repo, run: Run, text: str) -> None:
        """The build job (a thread): build and push the images as the workflow says; then the run goes on."""
        from helpers.rehearse import builder

        assert self.build is not None and self.repo_dir is not None
        lines: list[str] = []
        ok = True
        try:
            pushed = builder.run_build_job(
                self.repo_dir, text, repo.full_name, run.head_sha, run.head_branch,
                build_args=self.build.get("build_args"), labels=self.build.get("labels"), log=lines.append,
            )  # fmt: skip
        except Exception as exc:  # the job fails, and says why
            lines.append(f"build: ::error::{exc}")
            pushed, ok = [], False
        with self.lock:
            run.log.extend(lines)
            run.images = [vars(p) for p in pushed]
            run.build_ok, run.building = ok, False
        self._save()

    @staticmethod
    def _plan_jobs(wf: Workflow) -> list[dict[str, Any]]:
        try:
            data = deploy_workflow.load(wf.text)
        except (yaml.YAMLError, ValueError):
            return [{"key": "workflow", "name": "workflow", "steps": [], "deploy": False}]
        jobs = []
        for key, job in (data.get("jobs") or {}).items():
            job = job or {}
            include = ((job.get("strategy") or {}).get("matrix") or {}).get("include") or [{}]
            for entry in include:
                name = str(job.get("name") or key)
                for k, v in (entry or {}).items():
                    name = re.sub(r"\$\{\{\s*matrix\." + re.escape(str(k)) + r"\s*\}\}", str(v), name)
                env = {k for s in job.get("steps") or [] for k in (s.get("env") or {})}
                jobs.append(
                    {
                        "key": key,
                        "name": name,
                        "steps": [
                            str(s.get("name") or s.get("uses") or "run") for s in job.get("steps") or []
                        ],
                        "deploy": set(deploy_workflow.DEPLOY_SECRETS) <= env,
                        "build": any(
                            str(s.get("uses", "")).startswith("docker/build-push-action@")
                            for s in job.get("steps") or []
                        ),
                    }
                )
        return jobs

    def _advance(self, repo: Repo, run: Run, poll: bool = True) -> None:
        if run.status == "completed":
            return
        if poll:
            run.polls += 1
        now = self.clock()
        if run.status == "queued" and run.polls >= self.run_after_polls:
            run.status, run.started_at, run.updated_at = "in_progress", now, now
        if run.status == "in_progress" and run.polls >= 2 * self.run_after_polls and not run.building:
            self._complete(repo, run)

    def _complete(self, repo: Repo, run: Run) -> None:
        ok = True
        for job in run.jobs:
            job_ok = True
            if self.forced_conclusion is None and job.get("build") and run.build_ok is not None:
                job_ok = run.build_ok
            elif self.forced_conclusion is None and job["deploy"] and self.emulate_deploy:
                job_ok = ok and self._emulate_deploy(repo, run)  # needs: build
            elif self.forced_conclusion is None:
                run.log.append(f"{job['name']}: not executed in rehearsal (no runner for this job): success")
            job["conclusion"] = "success" if job_ok else "failure"
            ok = ok and job_ok
        conclusion = self.forced_conclusion or ("success" if ok else "failure")
        if self.forced_conclusion:
            for job in run.jobs:
                job["conclusion"] = conclusion
        now = self.clock()
        run.status, run.conclusion, run.completed_at, run.updated_at = "completed", conclusion, now, now

    def _emulate_deploy(self, repo: Repo, run: Run) -> bool:
        """What the deploy job's script does, with the repository's secrets (decrypted here, never shown)."""
        values: dict[str, str] = {}
        for name in deploy_workflow.DEPLOY_SECRETS:
            if name not in repo.secrets:
                run.log.append(f"deploy: ::error::secret {name} is not set")
                return False
            values[name] = self.secret_value(repo.full_name, name)
        token = values[deploy_workflow.COOLIFY_TOKEN_SECRET]
        for app, secret in deploy_workflow.APP_UUID_SECRETS.items():
            url = deploy_workflow.deploy_url(values[deploy_workflow.COOLIFY_URL_SECRET], values[secret])
            host = urllib.parse.urlsplit(url).hostname or ""
            if not _is_loopback(host):
                run.log.append(
                    f"deploy {app}: refused: rehearsal only calls loopback addresses, not {host!r}"
                )
                return False
            try:
                # the deploy job's own call: the fault mode of the Coolify stand-in spares it (STANDIN_AGENT)
                headers = {"Authorization": f"Bearer {token}", "User-Agent": f"{STANDIN_AGENT} (deploy job)"}
                answer = httpx.post(url, headers=headers, timeout=30)
            except httpx.HTTPError as exc:
                run.log.append(f"deploy {app}: POST {url} failed: {type(exc).__name__}")
                return False
            run.log.append(f"deploy {app}: POST {url} -> {answer.status_code}")
            if answer.status_code >= 400:
                return False
        return True

    def _run_json(self, request: Request, repo: Repo, run: Run) -> dict[str, Any]:
        wf = repo.workflows.get(run.workflow_id)
        base = f"/repos/{repo.full_name}/actions/runs/{run.id}"
        minimal = self._minimal_repo(request, repo)
        actor = self._simple_user(request, self.login, 1, "User")
        return {
            "id": run.id,
            "name": wf.name if wf else "workflow",
            "node_id": f"WFR_{run.id}",
            "head_branch": run.head_branch,
            "head_sha": run.head_sha,
            "path": wf.path if wf else "",
            "display_title": f"{run.event} to {run.head_branch}",
            "run_number": run.run_number,
            "run_attempt": run.run_attempt,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": run.workflow_id,
            "url": request.url_for(base),
            "html_url": f"https://github.com/{repo.full_name}/actions/runs/{run.id}",
            "jobs_url": request.url_for(base + "/jobs"),
            "logs_url": request.url_for(base + "/logs"),
            "check_suite_url": request.url_for(f"/repos/{repo.full_name}/check-suites/{run.id}"),
            "artifacts_url": request.url_for(base + "/artifacts"),
            "cancel_url": request.url_for(base + "/cancel"),
            "rerun_url": request.url_for(base + "/rerun"),
            "workflow_url": request.url_for(f"/repos/{repo.full_name}/actions/workflows/{run.workflow_id}"),
            "pull_requests": [],
            "created_at": iso(run.created_at),
            "updated_at": iso(run.updated_at),
            "run_started_at": iso(run.started_at or run.created_at),
            "actor": actor,
            "triggering_actor": actor,
            "head_commit": {
                "id": run.head_sha,
                "tree_id": run.head_sha[::-1],
                "message": f"rehearsal {run.event}",
                "timestamp": iso(run.created_at),
                "author": {"name": self.login, "email": f"{self.login}@example.invalid"},
                "committer": {"name": self.login, "email": f"{self.login}@example.invalid"},
            },
            "repository": minimal,
            "head_repository": minimal,
            # not in GitHub's API: what the emulated jobs did, and the images the build job pushed
            "x_rehearsal": {"log": list(run.log), "images": list(run.images)},
        }

    def _run_or_404(self, request: Request, repo: Repo) -> Run:
        run = repo.runs.get(request.params["run_id"])
        if run is None:
            raise HTTPError(404, "Not Found")
        return run

    def _list_runs(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        runs = sorted(repo.runs.values(), key=lambda r: r.id, reverse=True)
        if "workflow_id" in request.params:
            wf = self._workflow_or_404(request, repo)
            runs = [r for r in runs if r.workflow_id == wf.id]
        for r in runs:
            self._advance(repo, r)
        status = request.arg("status")
        if status and status not in RUN_STATUSES + CONCLUSIONS:
            raise HTTPError(
                422, f"Invalid request.\n\nstatus must be one of {', '.join(RUN_STATUSES + CONCLUSIONS)}."
            )
        for key, wanted in (
            ("branch", "head_branch"),
            ("event", "event"),
            ("head_sha", "head_sha"),
            ("actor", "actor"),
        ):
            value = request.arg(key)
            if value:
                runs = [r for r in runs if getattr(r, wanted) == value]
        if status:
            runs = [r for r in runs if status in (r.status, r.conclusion)]
        return self._paged(request, "workflow_runs", [self._run_json(request, repo, r) for r in runs])

    def _get_run(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        run = self._run_or_404(request, repo)
        self._advance(repo, run)
        return json_response(self._run_json(request, repo, run))

    def _run_jobs(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        run = self._run_or_404(request, repo)
        jobs = []
        for n, job in enumerate(run.jobs, start=1):
            status = run.status if "conclusion" not in job else "completed"
            conclusion = job.get("conclusion")
            job_id = run.id * 100 + n
            jobs.append(
                {
                    "id": job_id,
                    "run_id": run.id,
                    "run_url": request.url_for(f"/repos/{repo.full_name}/actions/runs/{run.id}"),
                    "node_id": f"CR_{run.id}_{n}",
                    "head_sha": run.head_sha,
                    "head_branch": run.head_branch,
                    "workflow_name": repo.workflows[run.workflow_id].name
                    if run.workflow_id in repo.workflows
                    else "",
                    "name": job["name"],
                    "status": status,
                    "conclusion": conclusion,
                    "created_at": iso(run.created_at),
                    "started_at": iso(run.started_at or run.created_at),
                    "completed_at": iso(run.completed_at) if run.completed_at else None,
                    "url": request.url_for(f"/repos/{repo.full_name}/actions/jobs/{run.id * 100 + n}"),
                    "html_url": f"https://github.com/{repo.full_name}/actions/runs/{run.id}/job/{job_id}",
                    "check_run_url": request.url_for(
                        f"/repos/{repo.full_name}/check-runs/{run.id * 100 + n}"
                    ),
                    "labels": ["ubuntu-latest"],
                    "runner_id": None,
                    "runner_name": None,
                    "runner_group_id": None,
                    "runner_group_name": None,
                    "steps": [
                        {"name": s, "status": status, "conclusion": conclusion, "number": i}
                        for i, s in enumerate(job["steps"], start=1)
                    ],
                }
            )
        return self._paged(request, "jobs", jobs)

    def _cancel_run(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        run = self._run_or_404(request, repo)
        if run.status == "completed":
            raise HTTPError(409, "Cannot cancel a workflow run that is completed.")
        now = self.clock()
        run.status, run.conclusion, run.completed_at, run.updated_at = "completed", "cancelled", now, now
        return json_response({}, 202)

    def _rerun(self, request: Request) -> Response:
        repo = self._repo_or_404(request)
        run = self._run_or_404(request, repo)
        if run.status != "completed":
            raise HTTPError(403, "This workflow run is not completed")
        now = self.clock()
        run.run_attempt += 1
        run.status, run.conclusion, run.polls, run.updated_at = "queued", None, 0, now
        run.started_at = run.completed_at = None
        run.log = []
        for job in run.jobs:
            job.pop("conclusion", None)
        self._advance(repo, run, poll=False)
        return json_response({}, 201)

    # ---------------------------------------------------------------- control API (rehearsal only)

    def _control(self, request: Request) -> Response:
        what = request.path.removeprefix("/_standin").strip("/")
        if request.method == "POST" and what in ("push", "outcome", "workflows"):
            try:
                body = request.json() or {}
            except ValueError:
                return json_response({"message": "body must be JSON"}, 400)
            try:
                if what == "push":
                    full = body.get("repository") or next(iter(self.repos.values())).full_name
                    runs = self.push(full, body.get("branch"), body.get("sha"))
                    return json_response({"runs": [r.id for r in runs]}, 201)
                if what == "workflows":
                    wfs = self.set_workflows(body["repository"], body["files"])
                    return json_response({"workflows": [w.id for w in wfs]}, 201)
                conclusion = body.get("conclusion")
                if conclusion is not None and conclusion not in CONCLUSIONS:
                    return json_response({"message": f"conclusion must be one of {CONCLUSIONS} or null"}, 400)
                self.forced_conclusion = conclusion
                return json_response({"conclusion": conclusion})
            except KeyError as exc:
                return json_response({"message": f"unknown repository or missing field: {exc}"}, 404)
        return super()._control(request)

    # ---------------------------------------------------------------- persistence

    def _snapshot(self) -> dict[str, Any]:
        repos = {}
        for key, repo in self.repos.items():
            repos[key] = {
                "id": repo.id,
                "owner": repo.owner,
                "name": repo.name,
                "default_branch": repo.default_branch,
                "private": repo.private,
                "private_key": base64.b64encode(bytes(repo.private_key)).decode("ascii"),
                "key_id": repo.key_id,
                "secrets": {n: vars(s) for n, s in repo.secrets.items()},
                "workflows": {str(i): vars(w) for i, w in repo.workflows.items()},
                "runs": {str(i): vars(r) for i, r in repo.runs.items()},
            }
        return {"repos": repos, "forced_conclusion": self.forced_conclusion}

    def _save(self) -> None:
        if self.state_file is None:
            return
        with self.lock:
            payload = json.dumps(self._snapshot(), indent=1, sort_keys=True)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(payload, encoding="utf-8")
        os.chmod(tmp, 0o600)  # it holds the fake repositories' private keys
        tmp.replace(self.state_file)

    def _load(self) -> bool:
        assert self.state_file is not None
        if not self.state_file.is_file():
            return False
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        for key, raw in (data.get("repos") or {}).items():
            repo = Repo(
                raw["id"],
                raw["owner"],
                raw["name"],
                raw["default_branch"],
                raw["private"],
                PrivateKey(base64.b64decode(raw["private_key"])),
                raw["key_id"],
            )
            repo.secrets = {n: StoredSecret(**s) for n, s in raw.get("secrets", {}).items()}
            repo.workflows = {int(i): Workflow(**w) for i, w in raw.get("workflows", {}).items()}
            repo.runs = {int(i): Run(**r) for i, r in raw.get("runs", {}).items()}
            self.repos[key] = repo
        self.forced_conclusion = data.get("forced_conclusion")
        highest = max((r.id for repo in self.repos.values() for r in repo.runs.values()), default=0)
        self._ids = itertools.count(max(highest, max((r.id for r in self.repos.values()), default=0)) + 1)
        return bool(self.repos)


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    parser = cli_parser("A local, stateful GitHub REST API stand-in (Actions secrets, workflows, runs).")
    parser.add_argument(
        "--repository",
        action="append",
        default=None,
        help="owner/name of a repository the token may use (repeatable; default: $GITHUB_REPOSITORY)",
    )
    parser.add_argument(
        "--repo-dir",
        default=env.app_dir or None,
        help="the app repository whose .github/workflows a simulated push reads (default: $RUNBOOK_APP_DIR)",
    )
    parser.add_argument("--run-after-polls", type=int, default=1, help="reads of a run per status step")
    parser.add_argument("--rate-limit-per-hour", type=int, default=5000)
    parser.add_argument(
        "--no-emulate-deploy",
        action="store_true",
        help="complete deploy runs with success without calling the Coolify webhooks",
    )
    parser.add_argument(
        "--state-file", default=None, help="keep the state (keys, secrets, runs) in this file"
    )
    parser.add_argument(
        "--build",
        action="store_true",
        help="run the build jobs: build the images from the app repository as the workflow says and push "
        "them to the registry it names (helpers.rehearse.builder); without it they succeed unexecuted",
    )
    parser.add_argument(
        "--build-arg", action="append", default=[], metavar="NAME=VALUE", help="added to every build"
    )
    parser.add_argument(
        "--label", action="append", default=[], metavar="NAME=VALUE", help="put on every image built"
    )
    args = parser.parse_args(argv)
    token = os.environ.get("GITHUB_TOKEN", "")
    if not token:
        parser.error(
            "set GITHUB_TOKEN in the environment: the token this stand-in accepts "
            "(kept off the command line, where `ps` would show it)"
        )
    repositories = args.repository or [env.github_repository or "team/demo-app"]
    standin = GitHubStandIn(
        [token],
        repositories=repositories,
        host=args.host,
        port=args.port,
        repo_dir=args.repo_dir,
        run_after_polls=args.run_after_polls,
        rate_limit_per_hour=args.rate_limit_per_hour,
        emulate_deploy=not args.no_emulate_deploy,
        state_file=args.state_file,
        build={
            "build_args": dict(a.split("=", 1) for a in args.build_arg if "=" in a),
            "labels": dict(a.split("=", 1) for a in args.label if "=" in a),
        }
        if args.build
        else None,
    )
    serve(standin, args.ready_file)


if __name__ == "__main__":
    main()
