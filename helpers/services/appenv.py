"""Where the app finds PostgreSQL and Redis, as its env file says.

:func:`environment_of` reads an env file's text (``.env.example`` or ``.env``) and returns its keys
and an :class:`Endpoint` for each service: user, password, host, port, database name (for Redis: the
db index), each part with the key it comes from. The app may keep them in ``DATABASE_URL`` /
``REDIS_URL``, in separate keys (``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_DB``, ``PGHOST``...), or in
a URL built from such keys (``postgresql://${POSTGRES_USER}:...@${POSTGRES_HOST}:5432/${POSTGRES_DB}``,
expanded from the same file as dotenv-expand does). :func:`url_of` gives the URL an endpoint makes,
for the apps that have none: task 1.5 connects with it.

Values are read with python-dotenv (its reader, without interpolation, so that a ``${VAR}`` part can
be traced to its key); :mod:`helpers.app.envfile` edits the file line by line.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from dotenv import dotenv_values

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
    read = dotenv_values(stream=io.StringIO(text), interpolate=False)
    values = {k: v for k, v in read.items() if v is not None}
    keys = tuple(values)
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


_SCHEMES = {"postgres": ("postgresql", 5432), "redis": ("redis", 6379)}


def url_of(endpoint: Endpoint) -> str:
    """The URL an endpoint makes: ``redis://localhost:6380/1`` from ``REDIS_HOST``/``_PORT``/``_DB``."""
    scheme, port = _SCHEMES[endpoint.service]
    auth = quote(endpoint.user or "", safe="")
    if endpoint.password:
        auth += ":" + quote(endpoint.password, safe="")
    tail = f"/{endpoint.database}" if endpoint.database else ""
    where = f"{endpoint.host or 'localhost'}:{endpoint.port or port}"
    return f"{scheme}://{auth + '@' if auth else ''}{where}{tail}"
