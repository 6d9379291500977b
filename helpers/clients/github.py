"""GitHub's REST API through PyGithub: the client, its configuration and its error translation.

Configuration, never code paths: the API address is ``GITHUB_API_URL`` (default ``https://api.github.com``;
a rehearsal points it at a local stand-in). The token is the secret ``GITHUB_TOKEN``
(:mod:`helpers.core.secrets`): a fine-grained token on the app's repository with *Secrets: read and write*
and *Actions: read* (*Metadata: read* comes with it).

Errors come back in the :mod:`helpers.clients.errors` family with the next step: 401 (token wrong or
expired), 403 (a permission missing), 404 (no such repository, or the token cannot see it: GitHub answers 404
for both), 422 (the API refused a field), 429 and secondary limits (retried after ``retry-after``; only then
:class:`~helpers.clients.errors.RateLimited`), and a server that cannot be reached.

The steps that use it: :mod:`helpers.cloud.github_secrets` (task 2.13's repository secrets) and
:mod:`helpers.cloud.github_runs` (the workflow's runs, tasks 2.17 and 2.18).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from helpers.clients.errors import (
    ApiError,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    Unreachable,
)
from helpers.core import secrets
from helpers.core.settings import env

VENDOR = "GitHub"
DEFAULT_API_URL = "https://api.github.com"
TOKEN_NAME = "GITHUB_TOKEN"
TOKEN_URL = "https://github.com/settings/personal-access-tokens/new"
TOKEN_PERMISSIONS = ("Secrets: read and write", "Actions: read", "Metadata: read (always included)")


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


def _message(data: Any) -> str:
    if isinstance(data, Mapping):
        text = str(data.get("message") or "").strip()
        doc = data.get("documentation_url")
        return f"{text} ({doc})" if doc else text
    return str(data or "").strip()


def translate(exc: BaseException, what: str, repository: str = "") -> ApiError:
    """A PyGithub / requests exception as an :class:`~helpers.clients.errors.ApiError` with the next step."""
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
            return RateLimited(
                f"{what}: GitHub's rate limit stopped the runbook (HTTP {status}: {said})",
                vendor=VENDOR,
                status=status,
                hint=f"wait{' until ' + when if when else ' a few minutes'} and run the task again; nothing "
                "is half-done, every step is idempotent",
            )
        if status == 401:
            return Unauthorized(
                f"{what}: GitHub refused the token (401: {said})",
                vendor=VENDOR,
                status=401,
                hint=token_help(),
            )
        if status == 403:
            return Forbidden(
                f"{what}: the token may not do this (403: {said})",
                vendor=VENDOR,
                status=403,
                hint=f"give the token access to {repo} with {', '.join(TOKEN_PERMISSIONS)}",
            )
        if status == 404:
            return NotFound(
                f"{what}: {repo} was not found at {api_url()} (404: {said})",
                vendor=VENDOR,
                status=404,
                hint="check the repository name (owner/name) and that the token's repository access includes "
                "it: GitHub answers 404, not 403, when a token cannot see a private repository",
            )
        if status == 422:
            return InvalidRequest(
                f"{what}: GitHub refused the request (422: {said})",
                vendor=VENDOR,
                status=422,
                hint="see the message above",
            )
        if status == 429 or status >= 500:
            kind = RateLimited if status == 429 else ServerError
            return kind(
                f"{what}: GitHub answered {status} after the runbook's retries ({said})",
                vendor=VENDOR,
                status=status,
                hint="try again in a few minutes (https://www.githubstatus.com)",
            )
        return ApiError(f"{what}: GitHub answered {status}: {said}", vendor=VENDOR, status=status)
    if isinstance(exc, rex.ConnectionError | rex.Timeout):
        return Unreachable(
            f"{what}: cannot reach {api_url()} ({type(exc).__name__})",
            vendor=VENDOR,
            hint="check the network, or GITHUB_API_URL when you rehearse against the stand-in",
        )
    if isinstance(exc, rex.RetryError):
        return ServerError(
            f"{what}: GitHub kept failing after the retries ({exc})", vendor=VENDOR, hint="try again later"
        )
    return ApiError(f"{what}: {type(exc).__name__}: {exc}", vendor=VENDOR)


@contextmanager
def calling(what: str, repository: str = "") -> Iterator[None]:
    """Turn PyGithub's exceptions inside the block into the :mod:`helpers.clients.errors` family."""
    from github import GithubException
    from requests import exceptions as rex

    try:
        yield
    except (GithubException, rex.RequestException) as exc:
        raise translate(exc, what, repository) from None


# --------------------------------------------------------------------------- the client


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
    """The repository (``GET /repos/{owner}/{name}``), or an :class:`~helpers.clients.errors.ApiError`."""
    with calling(f"reading the repository {repository}", repository):
        return gh.get_repo(repository)


def iso(value: Any) -> str:
    """A PyGithub timestamp as GitHub writes it (``2025-01-02T03:04:05Z``)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value or "")
