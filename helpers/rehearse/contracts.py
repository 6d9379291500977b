"""The stand-ins held to the vendors' contracts: every logged exchange validated against their descriptions.

Each stand-in logs every exchange it answers (:class:`helpers.rehearse.base.LoggedRequest`: the request as
sent, the answer as given, secret strings redacted). This module holds those exchanges against the vendor's
OpenAPI description in the shared reference folder (never copied into the project):

* DigitalOcean: ``digitalocean/DigitalOcean-subset.v2.bundled.yaml``;
* Coolify: ``coolify/coolify-openapi.yaml`` (``coolify/NOTES.md`` says where it comes from);
* GitHub: ``github/github-actions-extract.json`` (``github/README.txt`` says how it was cut).

The folder is ``RUNBOOK_REFS_DIR``, by default ``../shared/refs`` beside the project root
(:func:`refs_dir`). Validation is openapi-core's (requests: operation, parameters, body; responses:
documented status, media type, body, headers); on top of it, no answer may carry a stand-in's internal
key (a JSON key starting with ``_``).

Known defects of a description are listed once, in ``contract-allowlist.yaml`` beside this module: each
entry names the vendor, the operation, the direction (request/response), the field, the reason and the
evidence. A violation that no entry covers fails (:meth:`Report.failures`). :func:`check` returns the
counts per vendor (validated, allowed, failed) that the rehearsal prints and the tests assert.

A request that the description forbids and the stand-in *rejected* (4xx) is a stand-in doing its job (the
stand-in tests send such requests on purpose): with ``strict_requests=False`` it counts as ``rejected``,
not as a failure; its answer is still validated. The rehearsal is strict: the clients must send only valid
requests.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from helpers.core.settings import Settings
from helpers.rehearse.base import LoggedRequest

REFS_ENV = "RUNBOOK_REFS_DIR"  # where the vendors' descriptions are (default: ../shared/refs)
REQUIRE_ENV = "RUNBOOK_REQUIRE_REFS"  # CI: "1" makes missing descriptions a failure, not a skip
ALLOWLIST = Path(__file__).with_name("contract-allowlist.yaml")
DIRECTIONS = ("request", "response")
PLACEHOLDER_TOKEN = "Bearer contract-check"  # the log keeps no header: the stand-in checked the real one


@dataclass(frozen=True)
class Vendor:
    name: str  # the stand-in's name (StandIn.name)
    description: str  # relative to the refs folder
    notes: tuple[str, ...]  # the files that explain the description (for messages)


VENDORS: dict[str, Vendor] = {
    "digitalocean": Vendor(
        "digitalocean", "digitalocean/DigitalOcean-subset.v2.bundled.yaml", ("digitalocean/README.txt",)
    ),
    "coolify": Vendor("coolify", "coolify/coolify-openapi.yaml", ("coolify/NOTES.md",)),
    "github": Vendor("github", "github/github-actions-extract.json", ("github/README.txt",)),
}


def refs_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The shared reference folder: ``RUNBOOK_REFS_DIR``, else ``../shared/refs`` beside the project."""
    return Path(Settings(environ).refs_dir)


def refs_required(environ: Mapping[str, str] | None = None) -> bool:
    return bool(Settings(environ).require_refs)


def refs_problem(vendors: Iterable[str] = VENDORS, environ: Mapping[str, str] | None = None) -> str | None:
    """Why the descriptions cannot be read (None when every one needed is there)."""
    folder = refs_dir(environ)
    missing = [VENDORS[v].description for v in vendors if not (folder / VENDORS[v].description).is_file()]
    if not missing:
        return None
    return (
        f"the vendors' API descriptions are not in {folder} (missing: {', '.join(missing)}); "
        f"set {REFS_ENV} to the shared reference folder (the one with digitalocean/, coolify/, github/)"
    )


# --------------------------------------------------------------------------- violations and the allow-list


@dataclass(frozen=True)
class Violation:
    """One way an exchange breaks the description.

    ``operation`` is ``METHOD /path/in/the/description`` (``GET /v2/droplets/{droplet_id}``; Coolify's
    paths without the ``/api/v1`` server prefix); ``field`` is where: ``body.droplet.image.id``,
    ``query.per_page``, ``status`` (an undocumented status code), ``content-type``, ``header.<name>``,
    ``operation`` (the description has no such operation), ``internal-key``.
    """

    vendor: str
    operation: str
    direction: str  # request | response
    field: str
    message: str
    status: int = 0

    def __str__(self) -> str:
        return f"{self.vendor} {self.operation} {self.direction} {self.field}: {self.message}"


@dataclass(frozen=True)
class Allowance:
    """An allow-list entry: a known defect of a description, with the reason and the evidence.

    ``operations``: the operations it names (``METHOD /path``), or ``("*",)`` for a defect of every
    operation of the vendor (a status every route answers, documented once for the whole API).
    ``fields``: exact names, or fnmatch patterns (``body*.description``).
    """

    vendor: str
    operations: tuple[str, ...]
    direction: str
    fields: tuple[str, ...]
    reason: str
    evidence: str
    status: int = 0  # 0: any status

    def covers(self, v: Violation) -> bool:
        return (
            (self.vendor, self.direction) == (v.vendor, v.direction)
            and (self.operations == ("*",) or v.operation in self.operations)
            and (self.status in (0, v.status))
            and any(f == v.field or fnmatch.fnmatchcase(v.field, f) for f in self.fields)
        )


def load_allowlist(path: Path = ALLOWLIST) -> list[Allowance]:
    """The allow-list; raises ``ValueError`` naming the entry when one lacks a field or names nonsense."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries: list[Allowance] = []
    for n, raw in enumerate(data.get("allowed") or [], start=1):
        where = f"{path.name} entry {n}"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} is not a mapping")
        missing = [
            k for k in ("vendor", "operation", "direction", "field", "reason", "evidence") if not raw.get(k)
        ]
        if missing:
            raise ValueError(f"{where} ({raw.get('operation')}) lacks {', '.join(missing)}")
        if raw["vendor"] not in VENDORS or raw["direction"] not in DIRECTIONS:
            raise ValueError(
                f"{where}: vendor must be one of {sorted(VENDORS)}, direction one of {DIRECTIONS}"
            )
        operations = raw["operation"] if isinstance(raw["operation"], list) else [raw["operation"]]
        fields = raw["field"] if isinstance(raw["field"], list) else [raw["field"]]
        entries.append(
            Allowance(
                raw["vendor"],
                tuple(str(o) for o in operations),
                raw["direction"],
                tuple(str(f) for f in fields),
                " ".join(str(raw["reason"]).split()),
                " ".join(str(raw["evidence"]).split()),
                int(raw.get("status") or 0),
            )
        )
    return entries


# --------------------------------------------------------------------------- the descriptions


def _load_document(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)


@dataclass
class _Operation:
    path: str  # the description's template
    regex: re.Pattern[str]
    literal: int  # characters outside parameters: the most literal template wins


class Description:
    """One vendor's description: its operations and openapi-core's validators over it."""

    def __init__(self, vendor: Vendor, folder: Path):
        from openapi_core import Config, OpenAPI

        self.vendor = vendor
        self.path = folder / vendor.description
        self.document = _load_document(self.path)
        server = (self.document.get("servers") or [{"url": "/"}])[0]["url"]
        parts = urlsplit(server)
        self.host_url = f"{parts.scheme}://{parts.netloc}"
        self.base_path = parts.path.rstrip("/")
        # the descriptions are what they are (redocly reports warnings): validate exchanges, not the document
        self.openapi = OpenAPI.from_dict(self.document, config=Config(spec_validator_cls=None))
        self.operations: list[_Operation] = []
        for template in self.document.get("paths") or {}:
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            literal = len(re.sub(r"\{[^}]+\}", "", template))
            self.operations.append(_Operation(template, re.compile(f"^{pattern}/?$"), literal))
        self.operations.sort(key=lambda o: -o.literal)

    def operation(self, method: str, path: str) -> str | None:
        """``METHOD /template`` of the described operation a request hits, or None."""
        if self.base_path:
            if not (path == self.base_path or path.startswith(self.base_path + "/")):
                return None
            path = path[len(self.base_path) :] or "/"
        for op in self.operations:
            if op.regex.match(path):
                methods = self.document["paths"][op.path]
                if method.lower() in methods:
                    return f"{method.upper()} {op.path}"
        return None

    def violations(self, entry: LoggedRequest) -> tuple[list[Violation], list[Violation]]:
        """(request violations, response violations) of one logged exchange."""
        name = self.vendor.name
        operation = self.operation(entry.method, entry.path)
        if operation is None:
            shown = f"{entry.method} {entry.path}"
            missing = Violation(name, shown, "request", "operation", "not an operation of the description")
            return [missing], []
        request = _Request(self.host_url, entry)
        response = _Response(entry)
        requests = [
            v
            for exc in self.openapi.request_validator.iter_errors(request)
            for v in _explain(name, operation, "request", exc, entry.status)
        ]
        responses = [
            v
            for exc in self.openapi.response_validator.iter_errors(request, response)
            for v in _explain(name, operation, "response", exc, entry.status)
        ]
        responses += [
            Violation(
                name, operation, "response", "internal-key", f"the answer carries the internal key {k!r}"
            )
            for k in internal_keys(entry.response_body if entry.response_json else None)
        ]
        return requests, responses


@functools.cache
def description(vendor: str, folder: str) -> Description:
    return Description(VENDORS[vendor], Path(folder))


def internal_keys(value: Any, where: str = "body") -> list[str]:
    """Where a JSON value holds a key starting with ``_`` (a stand-in's bookkeeping, never the vendor's)."""
    found: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k).startswith("_"):
                found.append(f"{where}.{k}")
            found += internal_keys(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += internal_keys(v, f"{where}[{i}]")
    return found


# --------------------------------------------------------------------------- openapi-core's protocols


class _Request:
    """A logged request as openapi-core reads one."""

    def __init__(self, host_url: str, entry: LoggedRequest):
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.host_url = host_url
        self.path = entry.path
        self.method = entry.method.lower()
        self.content_type = (entry.content_type or "").lower()
        headers = {"Authorization": PLACEHOLDER_TOKEN}
        if self.content_type:
            headers["Content-Type"] = entry.content_type
        query = [(k, v) for k, values in entry.query.items() for v in values]
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query), header=Headers(headers), cookie=ImmutableMultiDict()
        )
        if entry.body_json:
            self.body = None if entry.body is None else json.dumps(entry.body).encode("utf-8")
        else:
            self.body = str(entry.body).encode("utf-8") or None


class _Response:
    def __init__(self, entry: LoggedRequest):
        from werkzeug.datastructures import Headers

        self.status_code = entry.status
        self.content_type = (entry.response_type or "").lower()
        self.headers = Headers(entry.response_headers)
        if entry.response_body is None:
            self.data = None
        elif entry.response_json:
            self.data = json.dumps(entry.response_body).encode("utf-8")
        else:
            self.data = str(entry.response_body).encode("utf-8")


def _json_path(base: str, parts: Iterable[Any]) -> str:
    """``body.droplets[].image.regions[]``: list indices left out, so that one allow-list entry covers all."""
    out = base
    for p in parts:
        out += "[]" if isinstance(p, int) else f".{p}"
    return out


def _explain(
    vendor: str, operation: str, direction: str, exc: BaseException, status: int
) -> Iterator[Violation]:
    """openapi-core's error as violations with a field each (one per schema error)."""
    from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
    from openapi_core.templating.paths.exceptions import PathError
    from openapi_core.templating.responses.exceptions import ResponseNotFound
    from openapi_core.validation.request.exceptions import (
        MissingRequiredRequestBody,
        ParameterValidationError,
    )
    from openapi_core.validation.response.exceptions import HeaderValidationError, MissingData
    from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

    def make(where: str, message: str) -> Violation:
        return Violation(vendor, operation, direction, where, " ".join(message.split())[:300], status)

    if isinstance(exc, PathError):
        yield make("operation", str(exc))
        return
    if isinstance(exc, ResponseNotFound):
        yield make("status", f"status {status} is not a documented answer of the operation")
        return
    if isinstance(exc, MediaTypeNotFound):
        yield make("content-type", str(exc))
        return
    if isinstance(exc, MissingRequiredRequestBody | MissingData):
        yield make("body", str(exc))
        return
    if isinstance(exc, ParameterValidationError):
        base = f"{exc.location}.{exc.name}"
    elif isinstance(exc, HeaderValidationError):
        base = f"header.{exc.name.lower()}"
    else:
        base = "body"
    cause = exc.__cause__
    schema_errors = (
        list(getattr(cause, "schema_errors", None) or []) if isinstance(cause, InvalidSchemaValue) else []
    )
    if not schema_errors:
        yield make(base, str(cause or exc))
        return
    for err in schema_errors:
        yield from _schema_violations(make, base, err)


def _schema_violations(make: Any, base: str, err: Any) -> Iterator[Violation]:
    """One violation per leaf of a jsonschema error (``anyOf``/``oneOf`` keep their best match)."""
    path = _json_path(base, err.absolute_path)
    if err.validator == "required":
        name = re.match(r"'([^']+)'", err.message)
        yield make(_json_path(path, [name.group(1)]) if name else path, err.message)
        return
    if err.validator == "additionalProperties":
        for extra in re.findall(r"'([^']+)'", err.message.split("(")[-1]):
            yield make(_json_path(path, [extra]), "not allowed by the description (additionalProperties)")
        return
    if err.validator in ("anyOf", "oneOf") and err.context:
        for sub in _closest_branch(err.context):
            yield from _schema_violations(make, base, sub)
        return
    message, shown = err.message, repr(err.instance)
    if len(shown) > 60 and message.startswith(shown):  # not the whole body in the message
        message = f"the {type(err.instance).__name__}" + message[len(shown) :]
    yield make(path, f"{message} ({err.validator})" if err.validator in ("oneOf", "anyOf") else message)


def _closest_branch(context: Sequence[Any]) -> list[Any]:
    """The errors of the ``anyOf``/``oneOf`` branch the value came closest to.

    The branch whose errors sit deepest in the value matched its structure best (a single droplet fails
    the "several droplets" branch at the top, and the "one droplet" branch only deep inside); ties go to
    the branch with fewer errors.
    """
    branches: dict[Any, list[Any]] = {}
    for sub in context:
        branches.setdefault(sub.schema_path[0] if sub.schema_path else 0, []).append(sub)

    def closeness(errors: list[Any]) -> tuple[int, int]:
        return min(len(e.absolute_path) for e in errors), -len(errors)

    return max(branches.values(), key=closeness)


# --------------------------------------------------------------------------- the report


@dataclass
class Tally:
    validated: int = 0
    allowed: int = 0
    failed: int = 0
    rejected: int = 0  # invalid requests the stand-in refused (stand-in tests only)

    def __str__(self) -> str:
        text = f"{self.validated} validated, {self.allowed} allowed, {self.failed} failed"
        return text + (f", {self.rejected} rejected" if self.rejected else "")


@dataclass
class Outcome:
    entry: LoggedRequest
    failed: list[Violation] = field(default_factory=list)
    allowed: list[Violation] = field(default_factory=list)


@dataclass
class Report:
    """What :func:`check` found: counts per vendor and direction, the violations, the entries used."""

    requests: dict[str, Tally] = field(default_factory=dict)
    responses: dict[str, Tally] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    used: set[Allowance] = field(default_factory=set)

    def failures(self) -> list[Violation]:
        return [v for o in self.outcomes for v in o.failed]

    def allowed(self) -> list[Violation]:
        return [v for o in self.outcomes for v in o.allowed]

    def merge(self, other: Report) -> Report:
        for mine, theirs in ((self.requests, other.requests), (self.responses, other.responses)):
            for vendor, tally in theirs.items():
                t = mine.setdefault(vendor, Tally())
                t.validated += tally.validated
                t.allowed += tally.allowed
                t.failed += tally.failed
                t.rejected += tally.rejected
        self.outcomes += other.outcomes
        self.used |= other.used
        return self

    @property
    def total(self) -> int:
        return sum(t.validated for t in self.requests.values())

    def lines(self) -> list[str]:
        """The counts, one line per vendor (what the rehearsal prints)."""
        out = []
        for vendor in sorted(set(self.requests) | set(self.responses)):
            req, res = self.requests.get(vendor, Tally()), self.responses.get(vendor, Tally())
            out.append(f"{vendor}: requests {req}; responses {res}")
        return out

    def failure_lines(self, limit: int = 40) -> list[str]:
        seen: dict[str, int] = {}
        for v in self.failures():
            key = str(v)
            seen[key] = seen.get(key, 0) + 1
        lines = [f"{k}" + (f" (x{n})" if n > 1 else "") for k, n in seen.items()]
        more = len(lines) - limit
        return lines[:limit] + ([f"... and {more} more"] if more > 0 else [])

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {k: asdict(v) for k, v in self.requests.items()},
            "responses": {k: asdict(v) for k, v in self.responses.items()},
            "failures": [asdict(v) for v in self.failures()],
        }


def check(
    entries: Iterable[LoggedRequest],
    *,
    strict_requests: bool = True,
    allowlist: Sequence[Allowance] | None = None,
    folder: Path | None = None,
) -> Report:
    """Validate logged exchanges against the descriptions; see the module docstring.

    Entries of stand-ins without a description (a test's own ``StandIn``) are left out. Raises
    ``FileNotFoundError`` (with :func:`refs_problem`'s message) when a needed description is missing.
    """
    allowances = load_allowlist() if allowlist is None else list(allowlist)
    where = folder or refs_dir()
    report = Report()
    for entry in entries:
        if entry.standin not in VENDORS:
            continue
        if not (where / VENDORS[entry.standin].description).is_file():
            raise FileNotFoundError(refs_problem([entry.standin], {REFS_ENV: str(where)}))
        spec = description(entry.standin, str(where))
        request_violations, response_violations = spec.violations(entry)
        if entry.fault:  # a test chose that status (an injected fault): whether it is documented is moot
            response_violations = [v for v in response_violations if v.field != "status"]
        outcome = Outcome(entry)
        for direction, violations, tallies in (
            ("request", request_violations, report.requests),
            ("response", response_violations, report.responses),
        ):
            tally = tallies.setdefault(entry.standin, Tally())
            tally.validated += 1
            open_ = []
            for v in violations:
                cover = next((a for a in allowances if a.covers(v)), None)
                if cover is None:
                    open_.append(v)
                else:
                    outcome.allowed.append(v)
                    report.used.add(cover)
            rejected = direction == "request" and not strict_requests and 400 <= entry.status < 500
            if open_ and rejected:
                tally.rejected += 1
            elif open_:
                tally.failed += 1
                outcome.failed += open_
            elif violations:
                tally.allowed += 1
        report.outcomes.append(outcome)
    return report


def exchanges(raw: Iterable[Mapping[str, Any]]) -> list[LoggedRequest]:
    """Log entries as the control API (``GET /_standin/requests``) returns them, as :class:`LoggedRequest`."""
    known = set(LoggedRequest.__dataclass_fields__)
    return [LoggedRequest(**{k: v for k, v in item.items() if k in known}) for item in raw]


__all__ = [
    "ALLOWLIST",
    "REFS_ENV",
    "REQUIRE_ENV",
    "VENDORS",
    "Allowance",
    "Description",
    "Report",
    "Tally",
    "Violation",
    "check",
    "exchanges",
    "internal_keys",
    "load_allowlist",
    "refs_dir",
    "refs_problem",
    "refs_required",
]
