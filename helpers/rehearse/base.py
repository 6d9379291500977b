"""Shared plumbing for the stand-in HTTP servers (DigitalOcean, Coolify, GitHub).

A stand-in is a :class:`StandIn` subclass that registers routes and keeps its
state in plain Python objects. This module gives every stand-in the same
machinery:

* a threaded HTTP/1.1 server on 127.0.0.1 with a free port, started and stopped
  as a context manager (``with MyStandIn() as server: server.url``) or run as a
  process (:func:`main`, :class:`StandInProcess`);
* the same routes answered in-process through an httpx transport
  (:meth:`StandIn.transport`), so a client under test is one argument away from
  the fake, without sockets;
* JSON requests and responses (:class:`Request`, :func:`json_response`,
  :class:`HTTPError`), path templates such as ``/v2/droplets/{droplet_id:int}``;
* a bearer-token check (:meth:`StandIn.bearer_token`);
* fault injection: the next N requests to a route answer an error, before or
  *after* the route did its work (a lost response: the resource exists but the
  client saw a 500, or no answer at all: the connection dropped), or answer late
  (:meth:`StandIn.inject`); and a fault mode (:class:`Chaos`) that puts 429s, 500s,
  503s, lost responses and slow answers at seeded random points, within a fixed
  budget (a rehearsal's ``--faults``);
* a request log (method, path, query, JSON body with secret-named fields redacted, status;
  never headers, so never a token) for tests that prove what was (not) sent;
* a small control API under ``/_standin/`` (faults, log) for stand-ins that run
  as separate processes.

Why the standard library: ``http.server.ThreadingHTTPServer`` is enough for a
JSON API on loopback, starts in milliseconds inside a test, adds no dependency
(the project ships these stand-ins to learners), and the routing we need is a
dozen lines. A framework (Flask, Starlette) would add an ASGI/WSGI server and
its dependencies for nothing we use.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from helpers.core.settings import env

if TYPE_CHECKING:  # imported where used: the Coolify stand-in also runs on a droplet without httpx
    import httpx

CONTROL_PREFIX = "/_standin"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The User-Agent prefix of requests the stand-ins and the rehearsal send themselves (the GitHub stand-in's
# deploy job calling Coolify's webhook, the rehearsal's own reads): the fault mode spares them.
STANDIN_AGENT = "runbook-standin"


# --------------------------------------------------------------------------- requests and responses


@dataclass
class Request:
    """One HTTP request as the route handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""
    params: dict[str, Any] = field(default_factory=dict)  # path parameters, converted
    base_url: str = ""  # scheme://host:port the client used (for absolute links)
    route: str = ""  # the matched route template, e.g. "/v2/droplets/{droplet_id:int}"
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def has_body(self) -> bool:
        return bool(self.body.strip())

    def json(self) -> Any:
        """The parsed JSON body; an empty body is ``None``; invalid JSON raises ``ValueError``."""
        if not self.has_body:
            return None
        return json.loads(self.body.decode("utf-8"))

    def url_for(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        """An absolute URL on this server (as the client addressed it)."""
        qs = f"?{urllib.parse.urlencode(query, doseq=True)}" if query else ""
        return f"{self.base_url}{path}{qs}"


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes, or None for an empty body
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection instead of answering (the client gets no response)

    def encode(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode("utf-8")

    @property
    def json_body(self) -> bool:
        return self.body is not None and not isinstance(self.body, bytes)


def end_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    """Ask ``proc`` to stop with ``sig`` (SIGTERM; SIGINT lets the runner end as on Ctrl-C), wait up to
    ``timeout`` seconds, then kill it. Its exit code; nothing happens when it has already ended."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status=status, body=body, headers=dict(headers or {}))


def empty_response(status: int = 204, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status=status, body=None, headers=dict(headers or {}))


class HTTPError(Exception):
    """Raised by a handler: becomes an error response in the vendor's shape.

    ``code`` is the vendor's short error id (e.g. ``unprocessable_entity``);
    ``extra`` is merged into the body (e.g. Coolify's ``errors`` by field).
    """

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


Handler = Callable[[Request], Response]


# --------------------------------------------------------------------------- routing


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    regex: re.Pattern[str]
    converters: dict[str, Callable[[str], Any]]
    auth: bool = True


_PARAM = re.compile(r"\{(\w+)(?::(int|str|path))?\}")


def compile_template(template: str) -> tuple[re.Pattern[str], dict[str, Callable[[str], Any]]]:
    """``/v2/droplets/{droplet_id:int}`` -> regex with named groups and converters."""
    converters: dict[str, Callable[[str], Any]] = {}
    pattern = ""
    pos = 0
    for m in _PARAM.finditer(template):
        pattern += re.escape(template[pos : m.start()])
        name, kind = m.group(1), m.group(2) or "str"
        pattern += {"int": r"(?P<%s>-?\d+)", "str": r"(?P<%s>[^/]+)", "path": r"(?P<%s>.+)"}[kind] % name
        converters[name] = int if kind == "int" else urllib.parse.unquote
        pos = m.end()
    pattern += re.escape(template[pos:])
    return re.compile(f"^{pattern}/?$"), converters


# --------------------------------------------------------------------------- faults and the request log


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with ``status``.

    ``path`` matches a route template (``/v2/droplets/{droplet_id:int}``) or a
    concrete path (``/v2/droplets/7``); ``"*"`` matches every path. ``when``:
    ``"before"`` answers without running the route (nothing happened);
    ``"after"`` runs the route, then answers the error instead of its response
    (something happened, the client cannot know: the classic lost response).
    ``body`` ``None`` means the stand-in's own error body for ``status``.
    ``action``: ``"answer"`` answers ``status`` (after ``delay`` seconds); ``"drop"`` closes the
    connection without any answer (with ``when="after"``: the server acted, the response was lost);
    ``"slow"`` waits ``delay`` seconds, then runs the route and answers normally (``status`` unused).
    ``kind`` names the fault in the request log (the fault mode's kinds, :data:`FAULT_KINDS`).
    """

    path: str
    status: int
    method: str | None = None
    times: int = 1
    when: Literal["before", "after"] = "before"
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    message: str | None = None
    delay: float = 0.0
    action: Literal["answer", "drop", "slow"] = "answer"
    kind: str = ""

    def matches(self, request: Request) -> bool:
        if self.method and self.method.upper() != request.method:
            return False
        return self.path in ("*", request.path, request.route)


# The fault mode's kinds (issue 12): what a vendor's API does on a bad day.
FAULT_KINDS = ("rate_limited", "server_error", "unavailable", "lost_response", "slow")


@dataclass
class Chaos:
    """Faults at seeded random points within a fixed budget: a stand-in's fault mode.

    ``writes`` and ``reads`` map a kind of :data:`FAULT_KINDS` to how many of it this stand-in may inject
    into requests that change something (POST, PUT, PATCH, DELETE) and into the others:
    ``rate_limited`` (429 with ``Retry-After``), ``server_error`` (500) and ``unavailable`` (503 with
    ``Retry-After``) answer before the route runs; ``lost_response`` runs the route, then drops the
    connection without an answer (the droplet was created, the client never heard); ``slow`` answers
    normally after ``slow_seconds``. A write gets a fault with chance ``write_rate``, a read with ``rate``.
    Writes and reads draw from two generators seeded with ``seed`` and the stand-in's name, from two
    budgets, so the runbook's (fixed) sequence of changes meets the same faults for the same seed whatever
    the number of reads (polls) in between. Requests whose User-Agent starts with :data:`STANDIN_AGENT`
    are spared (the stand-ins' and the rehearsal's own calls).
    """

    seed: int
    writes: dict[str, int] = field(default_factory=dict)
    reads: dict[str, int] = field(default_factory=dict)
    rate: float = 0.04
    write_rate: float = 0.3
    slow_seconds: float = 2.0
    retry_after: int = 1
    standin: str = ""
    injected: dict[str, dict[str, int]] = field(default_factory=lambda: {"writes": {}, "reads": {}})

    def __post_init__(self) -> None:
        unknown = (set(self.writes) | set(self.reads)) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)} (the kinds: {', '.join(FAULT_KINDS)})")
        self._rng = {
            pool: random.Random(f"{self.seed}/{self.standin}/{pool}") for pool in ("writes", "reads")
        }

    def remaining(self, pool: str) -> dict[str, int]:
        budget, spent = getattr(self, pool), self.injected[pool]
        return {k: n - spent.get(k, 0) for k, n in budget.items() if n > spent.get(k, 0)}

    def draw(self, request: Request) -> Fault | None:
        """The fault for this request, or None (most requests)."""
        if (request.header("User-Agent") or "").startswith(STANDIN_AGENT):
            return None
        pool = "writes" if request.method in MUTATING_METHODS else "reads"
        rng = self._rng[pool]
        if rng.random() >= (self.write_rate if pool == "writes" else self.rate):
            return None
        kinds = sorted(self.remaining(pool))
        if not kinds:
            return None
        kind = rng.choice(kinds)
        self.injected[pool][kind] = self.injected[pool].get(kind, 0) + 1
        wait = {"Retry-After": str(self.retry_after)}
        return {
            "rate_limited": Fault("*", 429, headers=wait, kind=kind),
            "server_error": Fault("*", 500, kind=kind),
            "unavailable": Fault("*", 503, headers=wait, kind=kind),
            "lost_response": Fault("*", 0, when="after", action="drop", kind=kind),
            "slow": Fault("*", 0, action="slow", delay=self.slow_seconds, kind=kind),
        }[kind]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "writes": dict(self.writes),
            "reads": dict(self.reads),
            "rate": self.rate,
            "write_rate": self.write_rate,
            "slow_seconds": self.slow_seconds,
            "retry_after": self.retry_after,
            "injected": {pool: dict(n) for pool, n in self.injected.items()},
        }


@dataclass
class LoggedRequest:
    """One exchange: the request as sent (never its headers, so never a token) and the answer given.

    Bodies are JSON values with the strings of secret fields replaced (:func:`redact_secret_fields`);
    a body that is not JSON is kept as text (``body_json`` / ``response_json`` False). What was sent and
    answered keeps its shape, so that :mod:`helpers.rehearse.contracts` can hold the exchange against the
    vendor's description after the fact, also for a stand-in that ran in another process or on a droplet.
    """

    time: float
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int
    route: str
    fault: bool = False
    content_type: str = ""  # the request's Content-Type
    body_json: bool = True
    response_type: str = ""  # the answer's Content-Type ("" without a body)
    response_body: Any = None
    response_json: bool = True
    response_headers: dict[str, str] = field(default_factory=dict)  # the stand-in's own (no token in them)
    standin: str = ""  # the stand-in's name: digitalocean, coolify, github
    fault_kind: str = ""  # the injected fault's kind (FAULT_KINDS), when it had one
    dropped: bool = False  # the connection was closed without an answer (the response logged was not sent)

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING_METHODS


TEXT_LIMIT = 4000  # characters of a non-JSON body kept in the log


def redact_secret_fields(value: Any, extra: frozenset[str] = frozenset()) -> Any:
    """``value`` with the strings held by secret-named keys (``*password*``, ``*token*``...) replaced.

    The request log is for proving what was sent and answered, and may be printed: secrets stay out of
    it. A stand-in keeps what it needs (e.g. a database password) in its own state, not in the log.
    The shape stays (a list under ``secrets`` is walked, not replaced; ``None`` and numbers stay), so
    that a logged exchange can still be validated against the vendor's description. ``extra``: more
    field names whose strings are secret for this stand-in (Coolify's env ``value``, database URLs).
    """
    try:
        from helpers.core.secrets import REDACTED, is_secret_name
    except ImportError:  # a stand-in shipped to a droplet (task 2.5's rehearsal): the standard library only
        REDACTED = "[REDACTED]"

        def is_secret_name(name: str) -> bool:
            return any(w in name.upper() for w in ("TOKEN", "PASSWORD", "SECRET", "API_KEY", "PRIVATE_KEY"))

    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            secret = str(k) in extra or is_secret_name(str(k))
            out[k] = REDACTED if secret and isinstance(v, str) and v else redact_secret_fields(v, extra)
        return out
    if isinstance(value, list):
        return [redact_secret_fields(v, extra) for v in value]
    return value


# --------------------------------------------------------------------------- the stand-in


class StandIn:
    """Base class of the stand-ins: routes, dispatch, auth, faults, log, server lifecycle.

    Subclasses register routes in ``__init__`` with :meth:`add_route` (or the
    :meth:`route` decorator), and may override :meth:`error_body`,
    :meth:`authenticate` and :meth:`decorate` (extra headers on every response).
    """

    name = "stand-in"
    # every stand-in made in this process (a test harness validates their logs: helpers.rehearse.contracts)
    instances: ClassVar[weakref.WeakSet[StandIn]] = weakref.WeakSet()

    def __init__(self, tokens: Sequence[str] = (), host: str = "127.0.0.1", port: int = 0):
        StandIn.instances.add(self)
        self.tokens: set[str] = set(tokens)
        self.host = host
        self.port = port
        self.routes: list[Route] = []
        self.faults: list[Fault] = []
        self.chaos: Chaos | None = None
        self.log: list[LoggedRequest] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- routes

    def add_route(self, method: str, template: str, handler: Handler, auth: bool = True) -> None:
        regex, converters = compile_template(template)
        self.routes.append(Route(method.upper(), template, handler, regex, converters, auth))

    def route(self, method: str, template: str, auth: bool = True) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add_route(method, template, handler, auth)
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, Any], bool]:
        """(route, params, path_known). ``path_known`` tells 405 from 404."""
        known = False
        for route in self.routes:
            m = route.regex.match(path)
            if not m:
                continue
            known = True
            if route.method != method:
                continue
            try:
                params = {k: route.converters[k](v) for k, v in m.groupdict().items()}
            except ValueError:
                continue
            return route, params, True
        return None, {}, known

    # ---------------------------------------------------------------- hooks for subclasses

    def error_body(self, status: int, message: str, code: str | None, request: Request) -> Any:
        """The vendor's error body. Default: ``{"message": ...}``."""
        return {"message": message}

    def authenticate(self, request: Request) -> None:
        """Default: ``Authorization: Bearer <one of self.tokens>`` or 401."""
        self.bearer_token(request)

    def bearer_token(self, request: Request) -> str:
        """The request's bearer token if it is known; raises a 401 :class:`HTTPError` otherwise."""
        value = request.header("Authorization") or ""
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or token not in self.tokens:
            raise HTTPError(401, "Unable to authenticate you.", "unauthorized")
        return token

    def decorate(self, request: Request, response: Response) -> None:
        """Add headers to every response (rate limits, request ids...)."""

    def before(self, request: Request) -> None:
        """Runs after authentication, before the route (rate limiting...). May raise HTTPError."""

    # ---------------------------------------------------------------- faults and log

    def inject(self, path: str, status: int, **kwargs: Any) -> Fault:
        """Make the next ``times`` requests to ``path`` answer ``status``; see :class:`Fault`."""
        fault = Fault(path=path, status=status, **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def set_chaos(self, seed: int, **options: Any) -> Chaos:
        """Switch the fault mode on (:class:`Chaos`: ``writes``, ``reads``...), replacing an earlier one."""
        options.pop("injected", None)
        chaos = Chaos(seed=int(seed), standin=self.name, **options)
        with self.lock:
            self.chaos = chaos
        return chaos

    def _draw_chaos(self, request: Request) -> Fault | None:
        with self.lock:
            return self.chaos.draw(request) if self.chaos is not None else None

    def _take_fault(self, request: Request, when: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.when == when and fault.times > 0 and fault.matches(request):
                    fault.times -= 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """The request log, optionally filtered by method and path (exact, template, or prefix*)."""
        with self.lock:
            entries = list(self.log)
        out = []
        for e in entries:
            if method and e.method != method.upper():
                continue
            if path and not (
                path in (e.path, e.route) or (path.endswith("*") and e.path.startswith(path[:-1]))
            ):
                continue
            out.append(e)
        return out

    def mutating_requests(self) -> list[LoggedRequest]:
        return [e for e in self.requests() if e.mutating]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    # ---------------------------------------------------------------- dispatch (server and transport)

    def _error(
        self,
        request: Request,
        status: int,
        message: str,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Response:
        body = self.error_body(status, message, code, request)
        if isinstance(body, dict) and extra:
            body.update(extra)
        return Response(status=status, body=body, headers=dict(headers or {}))

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith(CONTROL_PREFIX):
            return self._control(request)
        route, params, known = self.match(request.method, request.path)
        if route is not None:
            request.params = params
            request.route = route.template
        fault_hit: Fault | None = None
        try:
            if route is None:
                status = 405 if known else 404
                msg = "method not allowed" if known else "The resource you requested could not be found."
                raise HTTPError(status, msg, "not_found" if status == 404 else "method_not_allowed")
            if route.auth:
                self.authenticate(request)
            self.before(request)
            fault = self._take_fault(request, "before") or self._draw_chaos(request)
            if fault is not None and fault.when == "before" and fault.action != "slow":
                fault_hit = fault
                response = self._fault_response(request, fault)
            else:
                if fault is not None and fault.action == "slow":
                    fault_hit = fault
                    time.sleep(fault.delay)
                with self.lock:
                    response = route.handler(request)
                after = fault if fault is not None and fault.when == "after" else None
                after = after or self._take_fault(request, "after")
                if after is not None:
                    fault_hit = after
                    response = self._fault_response(request, after, response)
        except HTTPError as exc:
            response = self._error(request, exc.status, exc.message, exc.code, exc.headers, exc.extra)
        except Exception as exc:  # a bug in the stand-in: answer like a server error, keep serving
            message = f"stand-in error: {type(exc).__name__}: {exc}"
            response = self._error(request, 500, message, "server_error")
        self.decorate(request, response)
        self._record(request, response, fault_hit)
        return response

    def _fault_response(self, request: Request, fault: Fault, done: Response | None = None) -> Response:
        """The answer ``fault`` gives instead of the route's (``done``, when the route ran)."""
        if fault.action == "drop":
            if done is not None:  # what the route answered is logged; the client never sees it
                return dataclasses.replace(done, drop=True)
            return Response(status=0, body=None, drop=True)
        if fault.delay:
            time.sleep(fault.delay)
        if fault.body is not None:
            return Response(fault.status, fault.body, dict(fault.headers))
        message = fault.message or HTTPStatus(fault.status).phrase
        return self._error(request, fault.status, message, None, fault.headers)

    secret_fields: frozenset[str] = frozenset()  # more field names whose strings the log redacts

    def _record(self, request: Request, response: Response, fault: Fault | None) -> None:
        body_json = True
        try:
            body = redact_secret_fields(request.json(), self.secret_fields)
        except (ValueError, UnicodeDecodeError):
            body, body_json = request.body.decode("utf-8", "replace")[:TEXT_LIMIT], False
        headers = {k.lower(): str(v) for k, v in response.headers.items()}
        response_type = headers.pop("content-type", "")
        if response.json_body:
            response_type = response_type or "application/json; charset=utf-8"
            answer, answer_json = redact_secret_fields(response.body, self.secret_fields), True
        elif response.body is None:
            answer, answer_json = None, False
        else:
            answer, answer_json = response.encode().decode("utf-8", "replace")[:TEXT_LIMIT], False
        entry = LoggedRequest(
            time.time(),
            request.method,
            request.path,
            request.query,
            body,
            response.status,
            request.route,
            fault is not None,
            content_type=request.header("Content-Type") or "",
            body_json=body_json,
            response_type=response_type,
            response_body=answer,
            response_json=answer_json,
            response_headers=headers,
            standin=self.name,
            fault_kind=fault.kind if fault is not None else "",
            dropped=response.drop,
        )
        with self.lock:
            self.log.append(entry)

    # ---------------------------------------------------------------- control API (no vendor auth)

    def _control(self, request: Request) -> Response:
        what = request.path[len(CONTROL_PREFIX) :].strip("/")
        if what == "faults" and request.method == "POST":
            try:
                spec = request.json() or {}
                fault = self.inject(**spec)
            except (TypeError, ValueError) as exc:
                return json_response({"message": f"bad fault: {exc}"}, 400)
            return json_response({"fault": asdict(fault)}, 201)
        if what == "faults" and request.method == "DELETE":
            self.clear_faults()
            return empty_response()
        if what == "faults" and request.method == "GET":
            with self.lock:
                return json_response({"faults": [asdict(f) for f in self.faults]})
        if what == "chaos" and request.method == "POST":
            try:
                spec = request.json() or {}
                chaos = self.set_chaos(**spec)
            except (TypeError, ValueError) as exc:
                return json_response({"message": f"bad fault mode: {exc}"}, 400)
            return json_response({"chaos": chaos.as_dict()}, 201)
        if what == "chaos" and request.method == "GET":
            with self.lock:
                return json_response({"chaos": self.chaos.as_dict() if self.chaos else None})
        if what == "chaos" and request.method == "DELETE":
            with self.lock:
                self.chaos = None
            return empty_response()
        if what == "requests" and request.method == "GET":
            return json_response({"requests": [asdict(e) for e in self.requests()]})
        if what == "requests" and request.method == "DELETE":
            self.clear_log()
            return empty_response()
        if what == "health":
            return json_response({"name": self.name, "ok": True})
        return json_response({"message": f"unknown control endpoint {request.method} {request.path}"}, 404)

    # ---------------------------------------------------------------- in-process transport for httpx

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that answers through :meth:`dispatch`, no socket involved."""
        import httpx

        def handle(req: httpx.Request) -> httpx.Response:
            headers = Message()
            for k, v in req.headers.multi_items():
                headers[k] = v
            url = req.url
            base = f"{url.scheme}://{url.netloc.decode('ascii')}"
            request = Request(
                method=req.method.upper(),
                path=urllib.parse.unquote(url.path),
                query=urllib.parse.parse_qs(url.query.decode("ascii"), keep_blank_values=True),
                headers=headers,
                body=req.read(),
                base_url=base,
            )
            response = self.dispatch(request)
            if response.drop:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response.", request=req
                )
            out_headers = dict(response.headers)
            if response.json_body:
                out_headers.setdefault("content-type", "application/json; charset=utf-8")
            return httpx.Response(response.status, headers=out_headers, content=response.encode())

        return httpx.MockTransport(handle)

    # ---------------------------------------------------------------- real server lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running: call start() or use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StandIn:
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), _handler_for(self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        self.close()

    def close(self) -> None:
        """Release what the stand-in holds besides the server (subclasses: backends, files)."""

    def serve_forever(self) -> None:
        """Serve in the foreground until SIGINT/SIGTERM (the CLI)."""
        self.start()
        stop = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        try:
            stop.wait()
        finally:
            self.stop()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler_for(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"runbook-{standin.name}"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            split = urllib.parse.urlsplit(self.path)
            host = self.headers.get("Host") or f"{standin.host}:{standin.port}"
            request = Request(
                method=self.command.upper(),
                path=urllib.parse.unquote(split.path),
                query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
                headers=self.headers,
                body=body,
                base_url=f"http://{host}",
            )
            response = standin.dispatch(request)
            if response.drop:  # a lost response: close the connection, answer nothing
                self.close_connection = True
                return
            payload = response.encode() if self.command != "HEAD" else b""
            self.send_response(response.status)
            headers = {k.lower(): v for k, v in response.headers.items()}
            if response.json_body:
                headers.setdefault("content-type", "application/json; charset=utf-8")
            for k, v in headers.items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(response.encode())))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        def log_message(self, format: str, *args: Any) -> None:
            if env.standin_verbose:
                sys.stderr.write(f"{standin.name}: {format % args}\n")

    return Handler


# --------------------------------------------------------------------------- processes


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float = 15.0) -> None:
    """Poll ``{url}/_standin/health`` until it answers; raise with a clear message otherwise."""
    import httpx

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}{CONTROL_PREFIX}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"stand-in at {url} did not answer within {timeout:.0f}s ({last})")


class StandInProcess:
    """Run a stand-in module as a separate process: ``python -m MODULE --port N [args]``.

    >>> with StandInProcess("helpers.rehearse.digitalocean", env={...}) as proc:   # doctest: +SKIP
    ...     httpx.get(proc.url + "/v2/account", headers=...)
    """

    instances: ClassVar[weakref.WeakSet[StandInProcess]] = weakref.WeakSet()  # see StandIn.instances

    def __init__(
        self,
        module: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        cwd: str | Path | None = None,
        timeout: float = 20.0,
    ):
        self.module = module
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.port = port or free_port()
        self.cwd = cwd
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._output: Any = None  # a temporary file: a pipe nobody reads could fill and block the server
        self.final_log: list[dict[str, Any]] = []  # the request log, read just before the process stopped
        StandInProcess.instances.add(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandInProcess:
        cmd = [sys.executable, "-m", self.module, "--port", str(self.port), *self.args]
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - open for the process lifetime
        self.proc = subprocess.Popen(
            cmd, env=self.env, cwd=self.cwd, stdout=self._output, stderr=subprocess.STDOUT
        )
        try:
            wait_until_up(self.url, self.timeout)
        except TimeoutError:
            output = self.stop()
            message = f"{' '.join(cmd)} did not come up on {self.url}; its output:\n{output}"
            raise TimeoutError(message) from None
        return self

    def stop(self, timeout: float = 60.0) -> str:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout``) and return its output.

        The timeout is generous: on SIGTERM a stand-in releases what it holds (droplet containers).
        """
        if self.proc is None:
            return ""
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            self.final_log = self.read_log()
            end_process(proc, timeout=timeout)
        return self.output()

    def read_log(self) -> list[dict[str, Any]]:
        """The process's request log (``GET /_standin/requests``); empty when it does not answer."""
        import httpx

        try:
            return httpx.get(f"{self.url}{CONTROL_PREFIX}/requests", timeout=10).json()["requests"]
        except (httpx.HTTPError, ValueError, KeyError):
            return []

    def output(self) -> str:
        """What the process printed so far (stdout and stderr)."""
        if self._output is None:
            return ""
        self._output.seek(0)
        return self._output.read().decode("utf-8", "replace")

    def control(self) -> httpx.Client:
        """A client for the process's ``/_standin`` control API."""
        import httpx

        return httpx.Client(base_url=f"{self.url}{CONTROL_PREFIX}", timeout=10)

    def __enter__(self) -> StandInProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cli_parser(description: str) -> argparse.ArgumentParser:
    """The options every stand-in's ``python -m`` entry point shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument(
        "--ready-file", type=Path, default=None, help="write the server's URL to this file once it listens"
    )
    return parser


def serve(standin: StandIn, ready_file: Path | None = None) -> None:
    """Start ``standin``, announce its URL (stdout and ``ready_file``), serve until SIGTERM."""
    standin.start()
    print(f"{standin.name} stand-in listening on {standin.url}", flush=True)
    if ready_file is not None:
        ready_file.write_text(standin.url + "\n", encoding="utf-8")
    with contextlib.suppress(KeyboardInterrupt):
        standin.serve_forever()


def iter_pages(items: Sequence[Any], page: int, per_page: int) -> tuple[list[Any], int]:
    """Slice ``items`` for a 1-based page; returns (the page's items, number of pages)."""
    pages = max(1, -(-len(items) // per_page))
    start = (page - 1) * per_page
    return list(items[start : start + per_page]), pages


def int_arg(request: Request, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    """A query parameter as an int within bounds (values above ``maximum`` are capped)."""
    raw = request.arg(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(400, f"{name} must be an integer, got {raw!r}", "bad_request") from None
    if value < minimum:
        raise HTTPError(400, f"{name} must be at least {minimum}, got {value}", "bad_request")
    return min(value, maximum) if maximum else value


__all__ = [
    "CONTROL_PREFIX",
    "FAULT_KINDS",
    "STANDIN_AGENT",
    "Chaos",
    "Fault",
    "HTTPError",
    "LoggedRequest",
    "Request",
    "Response",
    "StandIn",
    "StandInProcess",
    "cli_parser",
    "empty_response",
    "free_port",
    "int_arg",
    "iter_pages",
    "json_response",
    "redact_secret_fields",
    "serve",
    "wait_until_up",
]
