"""``.env`` files, edited line by line so that every other key, comment, blank line and quote survives.

The parser understands what dotenv (Node and Python) reads: ``KEY=value``, ``export KEY=value``,
single/double/back-quoted values (double-quoted ones may span lines), inline comments after
unquoted values, comments and blank lines. Editing a key rewrites only its value; everything else
stays byte for byte, including CRLF line endings and a missing final newline.

:func:`environment_of` reads where the app finds PostgreSQL and Redis (:class:`Endpoint`: user,
password, host, port, database or Redis db index, each part with the key it comes from), from
``DATABASE_URL`` / ``REDIS_URL`` or from separate ``*_HOST`` / ``*_PORT`` / ``*_DB`` keys, ``${VAR}``
inside a URL expanded from the same file; :func:`edit_url` changes one part of such a URL and nothing
else. Task 1.9 (:mod:`helpers.app.envexample`) builds on both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

from helpers.app.appfiles import newline_of

EXAMPLE = ".env.example"
LOCAL = ".env"
DEFAULT_PASSWORD = "postgres"  # the compose file's documented local default

_ASSIGN = re.compile(
    r"^(?P<lead>[ \t]*)(?P<export>export[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)"
    r"(?P<eq>[ \t]*=[ \t]*)(?P<rest>.*)$"
)


@dataclass(frozen=True)
class Entry:
    """One logical line of an env file. ``raw`` is its exact text, newline(s) included."""

    raw: str
    kind: Literal["blank", "comment", "assign", "other"]
    key: str = ""
    value: str = ""
    quote: str = ""
    prefix: str = ""  # lead + export + key + '=' (as written)
    suffix: str = ""  # what follows the value: inline comment, trailing spaces
    newline: str = ""

    @property
    def exported(self) -> bool:
        return "export" in self.prefix.split(self.key)[0]

    def with_value(self, value: str) -> Entry:
        quote_char = self.quote
        if quote_char and quote_char in value:
            quote_char = next(q for q in ('"', "'", "`") if q not in value)
        if not quote_char and re.search(r"[\s#'\"]", value):
            quote_char = '"'
        raw = f"{self.prefix}{quote_char}{value}{quote_char}{self.suffix}{self.newline}"
        return replace(self, raw=raw, value=value, quote=quote_char)


class EnvFileError(ValueError):
    pass


def _lines(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        yield body, line[len(body) :]


def parse(text: str) -> list[Entry]:
    """Every line of ``text`` as an :class:`Entry`; ``"".join(e.raw for e in parse(t)) == t``."""
    entries: list[Entry] = []
    lines = list(_lines(text))
    i = 0
    while i < len(lines):
        body, newline = lines[i]
        i += 1
        stripped = body.strip()
        if not stripped:
            entries.append(Entry(body + newline, "blank", newline=newline))
            continue
        if stripped.startswith("#"):
            entries.append(Entry(body + newline, "comment", newline=newline))
            continue
        m = _ASSIGN.match(body)
        if not m:
            entries.append(Entry(body + newline, "other", newline=newline))
            continue
        prefix = body[: m.start("rest")]
        rest = m.group("rest")
        if rest[:1] in ('"', "'", "`"):
            q = rest[0]
            inner, end, extra = _closing(rest, q)
            raw_lines = body + newline
            while end < 0 and i < len(lines):  # a double-quoted value over several lines
                nbody, nnl = lines[i]
                i += 1
                raw_lines += nbody + nnl
                rest += newline + nbody
                newline = nnl
                inner, end, extra = _closing(rest, q)
            if end < 0:
                entries.append(Entry(raw_lines, "other", newline=newline))
                continue
            entries.append(Entry(raw_lines, "assign", m.group("key"), inner, q, prefix, extra, newline))
            continue
        cm = re.search(r"\s+#", rest)
        value = rest[: cm.start()] if cm else rest.rstrip()
        suffix = rest[len(value) :]
        entries.append(Entry(body + newline, "assign", m.group("key"), value, "", prefix, suffix, newline))
    return entries


def _closing(rest: str, q: str) -> tuple[str, int, str]:
    """(inside the quotes, index of the closing quote or -1, what follows it)."""
    i = 1
    while i < len(rest):
        if rest[i] == "\\" and q == '"':
            i += 2
            continue
        if rest[i] == q:
            return rest[1:i], i, rest[i + 1 :]
        i += 1
    return "", -1, ""


def render(entries: list[Entry]) -> str:
    return "".join(e.raw for e in entries)


def keys(text: str) -> list[str]:
    """The keys in file order (a duplicated key appears twice)."""
    return [e.key for e in parse(text) if e.kind == "assign"]


def values(text: str) -> dict[str, str]:
    """Key → value; for a duplicated key the last one wins, as with dotenv."""
    return {e.key: e.value for e in parse(text) if e.kind == "assign"}


def all_values(text: str, key: str) -> list[str]:
    return [e.value for e in parse(text) if e.kind == "assign" and e.key == key]


def set_key(text: str, key: str, value: str) -> str:
    """Set every occurrence of ``key`` to ``value`` (quotes, ``export``, comments kept); append if absent."""
    entries = parse(text)
    found = False
    for n, e in enumerate(entries):
        if e.kind == "assign" and e.key == key:
            found = True
            if e.value != value:
                entries[n] = e.with_value(value)
    if found:
        return render(entries)
    newline = newline_of(text) if text else "\n"
    if text and not text.endswith(("\n", "\r")):
        text += newline
    return text + Entry("", "assign", key, "", "", f"{key}=", "", newline).with_value(value).raw


# --------------------------------------------------------------------------- URLs inside values

# ``${VAR}``, ``${VAR:-default}`` and ``$VAR``, as dotenv-expand reads them.
VAR = re.compile(
    r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
URL = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?:(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@)?"
    r"(?P<host>\[[^\]]*\]|[^:/?#]*)"
    r"(?::(?P<port>[^/?#]*))?"
    r"(?:/(?P<path>[^?#]*))?"
    r"(?:\?(?P<query>[^#]*))?"
)


def holes(raw: str) -> tuple[str, list[str]]:
    """``raw`` with each ``${VAR}`` replaced by a marker, and the variables in order."""
    found: list[str] = []

    def hole(m: re.Match[str]) -> str:
        found.append(m.group(0))
        return f"\x00{len(found) - 1}\x00"

    return VAR.sub(hole, raw), found


def _fill(template: str, found: list[str]) -> str:
    return re.sub(r"\x00(\d+)\x00", lambda m: found[int(m.group(1))], template)


def edit_url(raw: str, wanted: dict[str, str]) -> str:
    """A ``postgres://`` or ``redis://`` URL with some parts replaced, everything else as written.

    Parts: ``host``, ``port``, ``user``, ``password``, ``database`` (the first path segment: the
    database name, or Redis's db index). A part written as ``${VAR}`` is left alone (the caller sets
    VAR); a missing port or database is added.
    """
    template, found = holes(raw)
    m = URL.match(template)
    if not m:
        return raw
    edits: list[tuple[int, int, int, str]] = []  # (start, order at the same place, end, text)
    for part, value in wanted.items():
        group = "path" if part == "database" else part
        if m.group(group) is not None:
            start, end = m.span(group)
            if part == "database":
                end = start + len(m.group("path").split("/", 1)[0])
            if "\x00" in template[start:end]:
                continue
            edits.append((start, 0, end, quote(value, safe="") if part in ("user", "password") else value))
        elif part == "port":
            edits.append((m.end("host"), 0, m.end("host"), f":{value}"))
        elif part == "database" and value not in ("", "0"):
            at = m.end("port") if m.group("port") is not None else m.end("host")
            edits.append((at, 1, at, f"/{value}"))
    for start, _, end, value in sorted(edits, reverse=True):
        template = template[:start] + value + template[end:]
    return _fill(template, found)


@dataclass(frozen=True)
class Endpoint:
    """Where the app finds PostgreSQL or Redis, as ``.env.example`` says; each part with its key.

    ``database`` is the database name for PostgreSQL and the db index (as text) for Redis.
    ``sources`` maps a part (``user``, ``host``...) to the env key it was read from; a part read
    from a URL names the URL's key, a part taken from ``${VAR}`` inside the URL names ``VAR``.
    """

    service: str  # "postgres" or "redis"
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    database: str | None = None
    url_key: str | None = None  # the key holding the URL, when there is one
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def index(self) -> int:
        """Redis: the db index (0 when the app names none)."""
        return int(self.database) if self.database and self.database.isdigit() else 0

    def shown(self) -> str:
        """A one-line summary without the password."""
        auth = self.user or ""
        if self.password:
            auth += ":***"
        where = f"{self.host or '?'}:{self.port or '?'}"
        tail = f"/{self.database}" if self.database not in (None, "") else ""
        if self.service == "redis" and not tail:
            tail = "/0 (default db)"
        return f"{auth}@{where}{tail}" if auth else f"{where}{tail}"


# --------------------------------------------------------------------------- where the app finds its services


@dataclass(frozen=True)
class Environment:
    """What an env file says about the app's services (see :func:`environment_of`)."""

    keys: tuple[str, ...]
    database: Endpoint | None
    redis: Endpoint | None
    urls: dict[str, Endpoint]
    unclear: tuple[str, ...] = ()


def environment_of(text: str, env_file: str = ".env.example") -> Environment:
    """The keys of an env file and where its PostgreSQL and Redis are (URLs or separate keys)."""
    entries = [e for e in parse(text) if e.kind == "assign"]
    keys = tuple(dict.fromkeys(e.key for e in entries))
    values = {e.key: e.value for e in entries}
    expanded = _expand_all(values)
    urls: dict[str, Endpoint] = {}
    for key, raw in values.items():
        ep = _url_endpoint(key, raw, values, expanded[key])
        if ep is not None:
            urls[key] = ep
    unclear: list[str] = []
    database = _endpoint("postgres", urls, expanded, env_file, unclear)
    redis = _endpoint("redis", urls, expanded, env_file, unclear)
    return Environment(keys, database, redis, urls, tuple(unclear))


def _endpoint(
    service: str, urls: dict[str, Endpoint], values: dict[str, str], env_file: str, unclear: list[str]
) -> Endpoint | None:
    preferred = "DATABASE_URL" if service == "postgres" else "REDIS_URL"
    mine = {k: v for k, v in urls.items() if v.service == service}
    url = mine.get(preferred)
    if url is None and mine:
        if len(mine) > 1:
            unclear.append(
                f"several {service} URLs ({', '.join(mine)}) and no {preferred}: {next(iter(mine))} taken"
            )
        url = mine[next(iter(mine))]
    parts = _separate_keys(service, values)
    if url is None and not parts:
        return None
    if url is None:
        sources = {part: key for part, (key, _) in parts.items()}
        got = {part: value for part, (_, value) in parts.items()}
        port = got.get("port")
        return Endpoint(
            service,
            host=got.get("host"),
            port=int(port) if port and port.isdigit() else None,
            user=got.get("user"),
            password=got.get("password"),
            database=got.get("database"),
            sources=sources,
        )
    # A URL and separate keys: the separate keys fill what the URL leaves out (a Redis db index).
    fields: dict[str, Any] = {f: getattr(url, f) for f in ("host", "port", "user", "password", "database")}
    sources = dict(url.sources)
    for part, (key, value) in parts.items():
        current = fields[part]
        if current in (None, ""):
            fields[part] = int(value) if part == "port" and value.isdigit() else value
            sources[part] = key
        elif str(current) != value:
            unclear.append(
                f"{url.url_key} says {part} {current!r} but {key}={value!r} in {env_file}: which one "
                "does the app use?"
            )
    return Endpoint(
        service,
        host=fields["host"],
        port=fields["port"],
        user=fields["user"],
        password=fields["password"],
        database=fields["database"],
        url_key=url.url_key,
        sources=sources,
    )


def expand(value: str, values: dict[str, str], depth: int = 0) -> str:
    """``${VAR}``, ``${VAR:-default}`` and ``$VAR`` from the same file (as dotenv-expand does)."""
    if depth > 5:
        return value

    def one(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        if name in values:
            return expand(values[name], values, depth + 1)
        return m.group("default") or ""

    return VAR.sub(one, value)


def _expand_all(values: dict[str, str]) -> dict[str, str]:
    return {k: expand(v, values) for k, v in values.items()}


def _url_endpoint(key: str, raw: str, values: dict[str, str], expanded: str) -> Endpoint | None:
    """The endpoint in a postgres:// or redis:// URL; a part written as ``${VAR}`` is sourced from VAR."""
    from urllib.parse import parse_qs, unquote

    holes: list[str] = []

    def hole(m: re.Match[str]) -> str:
        holes.append(m.group(0))
        return f"\x00{len(holes) - 1}\x00"

    template = VAR.sub(hole, raw)
    m = URL.match(template)
    full = URL.match(expanded)
    if not m or not full:
        return None
    scheme = full.group("scheme").lower()
    if scheme in ("postgres", "postgresql"):
        service = "postgres"
    elif scheme in ("redis", "rediss"):
        service = "redis"
    else:
        return None
    sources: dict[str, str] = {}
    got: dict[str, str | None] = {}
    for part, group in (("user", "user"), ("password", "password"), ("host", "host"), ("port", "port")):
        got[part] = unquote(full.group(group)) if full.group(group) else None
        written = m.group(group)
        if written is not None:
            sources[part] = _source(written, holes, key)
    path = full.group("path") or ""
    database: str | None = unquote(path.split("/", 1)[0]) if path else None
    if m.group("path"):
        sources["database"] = _source(m.group("path").split("/", 1)[0], holes, key)
    if service == "redis" and not database:
        db = parse_qs(full.group("query") or "").get("db")
        if db:
            database = db[0]
            sources["database"] = key
    port = got["port"]
    return Endpoint(
        service,
        host=got["host"],
        port=int(port) if port and port.isdigit() else None,
        user=got["user"],
        password=got["password"],
        database=database,
        url_key=key,
        sources=sources,
    )


def _source(written: str, holes: list[str], key: str) -> str:
    """The key a URL part comes from: ``VAR`` when the part is exactly ``${VAR}``, else the URL's key."""
    m = re.fullmatch(r"\x00(\d+)\x00", written)
    if m:
        v = VAR.fullmatch(holes[int(m.group(1))])
        if v:
            return v.group("braced") or v.group("bare") or key
    return key


# Separate keys, by service and part, in the order they are looked up.
_SEPARATE: dict[str, dict[str, tuple[str, ...]]] = {
    "postgres": {
        "host": ("PGHOST", "POSTGRES_HOST", "POSTGRESQL_HOST", "DB_HOST", "DATABASE_HOST"),
        "port": ("PGPORT", "POSTGRES_PORT", "POSTGRESQL_PORT", "DB_PORT", "DATABASE_PORT"),
        "user": (
            "PGUSER",
            "POSTGRES_USER",
            "POSTGRESQL_USER",
            "DB_USER",
            "DB_USERNAME",
            "DATABASE_USER",
            "DATABASE_USERNAME",
        ),
        "password": (
            "PGPASSWORD",
            "POSTGRES_PASSWORD",
            "POSTGRESQL_PASSWORD",
            "DB_PASSWORD",
            "DB_PASS",
            "DATABASE_PASSWORD",
        ),
        "database": (
            "PGDATABASE",
            "POSTGRES_DB",
            "POSTGRES_DATABASE",
            "POSTGRESQL_DATABASE",
            "DB_NAME",
            "DB_DATABASE",
            "DATABASE_NAME",
        ),
    },
    "redis": {
        "host": ("REDIS_HOST", "REDIS_HOSTNAME"),
        "port": ("REDIS_PORT",),
        "user": ("REDIS_USER", "REDIS_USERNAME"),
        "password": ("REDIS_PASSWORD", "REDIS_PASS"),
        "database": ("REDIS_DB", "REDIS_DATABASE", "REDIS_DB_INDEX", "REDIS_INDEX"),
    },
}


def _separate_keys(service: str, values: dict[str, str]) -> dict[str, tuple[str, str]]:
    found = {}
    for part, names in _SEPARATE[service].items():
        key = next((n for n in names if values.get(n, "") != ""), None)
        if key is not None:
            found[part] = (key, values[key])
    return found
