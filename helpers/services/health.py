"""The app's health URL: one request, read as the app means it.

The sample app's web process answers ``GET /api/health`` with ``{"db": "ok", "redis": "ok"}`` (200)
when it reaches both services, and 503 with the failing part's error otherwise. Apps spell this in
several ways (``"database": "connected"``, ``"postgres": "up"``, a top-level ``"status"``), so a part
is looked up under each of its usual names (:data:`PART_NAMES`) and counts as healthy when its value is
one of :data:`HEALTHY`. :func:`probe` never raises: a refused connection is a result with ``error``
set, so a verification table can show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from helpers.core.poll import PollTimeout, poll
from helpers.services import diagnose

DEFAULT_URL = "http://localhost:3000/api/health"
# The keys under which a health answer reports each dependency, and the values that mean "healthy".
PART_NAMES: dict[str, tuple[str, ...]] = {
    "database": ("database", "db", "postgres", "postgresql"),
    "redis": ("redis", "cache"),
}
HEALTHY = frozenset({"ok", "connected", "up", "healthy", "pass", "true"})


class BadHealthUrl(ValueError):
    pass


def validate_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL; raise with the next step otherwise."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadHealthUrl(
            f"health_url {url!r} is not an http(s) URL; pass the app's health endpoint, "
            f"for example {DEFAULT_URL}"
        )
    return url


@dataclass
class Health:
    url: str
    status_code: int | None = None
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def answered(self) -> bool:
        return self.status_code is not None

    @property
    def ok(self) -> bool:
        """200 with a JSON object, whose top-level ``status`` (when the app reports one) says healthy."""
        status = self.body.get("status")
        return self.status_code == 200 and not self.error and (status is None or _healthy(status))

    def _value(self, name: str) -> tuple[str, Any] | None:
        for key in PART_NAMES.get(name, (name,)):
            if key in self.body:
                return key, self.body[key]
        return None

    def part(self, name: str) -> str:
        """The state the app reports for one dependency (``database``, ``redis``), or why unknown."""
        if not self.answered:
            return f"no answer ({self.error})"
        found = self._value(name)
        if found is None:
            names = "/".join(PART_NAMES.get(name, (name,)))
            return f"not reported under {names} (body: {self.body or self.error})"
        return f"{found[0]}: {found[1]}"

    def connected(self, name: str) -> bool:
        found = self._value(name)
        return found is not None and _healthy(found[1])

    def summary(self) -> str:
        if not self.answered:
            return f"{self.url}: no answer ({self.error})"
        return f"{self.url}: HTTP {self.status_code} {self.body or self.error}"


def _healthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in HEALTHY


def probe(url: str, timeout: float = 5.0) -> Health:
    """One GET on the health URL; never raises."""
    validate_url(url)
    result = Health(url)
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return result
    result.status_code = response.status_code
    try:
        body = response.json()
    except ValueError:
        result.error = f"the answer is not JSON: {response.text[:200]!r}"
    else:
        if isinstance(body, dict):
            result.body = body
        else:
            result.error = f"the answer is JSON but not an object: {body!r}"
    return result


def wait_healthy(url: str, timeout: float = 60.0, interval: float = 0.5, alive: Any = None) -> Health:
    """Poll until the URL reports ok or ``timeout`` passes; return the last probe.

    ``alive`` (optional callable) is asked between probes; when it returns a message (a started
    process died, say) the wait stops early and that message becomes the result's error.
    """

    def settled(result: Health) -> bool:
        if result.ok:
            return True
        problem = alive() if alive else None
        if problem:
            result.error = problem
        return bool(problem)

    try:
        return poll(
            lambda: probe(url, timeout=min(5.0, max(timeout, 0.5))),
            until=settled,
            timeout=timeout,
            interval=interval,
            what=f"{url} to report ok",
        )
    except PollTimeout as exc:
        return exc.last


def check_health(check: Any, url: str, timeout: float = 10.0) -> Health:
    """Task 1.15: the health URL answers 200 and reports the database and Redis healthy."""
    result = probe(url, timeout=timeout)
    local = urlsplit(url).hostname in ("localhost", "127.0.0.1", "::1")  # production's engine is not ours
    engine = diagnose.engine_finding() if local and not result.ok else None  # the first cause below the app
    below = diagnose.explain(engine) if engine is not None and not engine.ok else ""
    check(
        "health URL answers 200",
        result.status_code == 200,
        result.summary(),
        hint=below
        or "start the app (its dev and worker scripts, or the app_commands parameter) and check "
        "health_url; a 503 names the part that fails",
    )
    for part, fix in (
        ("database", "DATABASE_URL in the app's .env must point at the local PostgreSQL (task 1.9, 1.4)"),
        ("redis", "REDIS_URL in the app's .env must point at the local Redis (task 1.9, 1.4)"),
    ):
        check(f"the app reports {part} ok", result.connected(part), result.part(part), hint=below or fix)
    return result
