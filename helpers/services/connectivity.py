"""Real connections to the local PostgreSQL and Redis, with the URLs the app itself uses.

Task 1.5 reads ``DATABASE_URL`` and ``REDIS_URL`` from the app's env file (``.env``
when present, else ``.env.example``) and talks to both servers for real:
``select version()`` and a temporary table on PostgreSQL 15, PING/SET/GET/DEL on
Redis 7. URLs carry passwords: they are shown only through
:func:`helpers.core.secrets.scrub`.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

from helpers.core.checks import Checklist
from helpers.core.errors import NextStepError
from helpers.core.secrets import scrub
from helpers.services import appenv, diagnose

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
POSTGRES_MAJOR = 15
REDIS_MAJOR = 7
TIMEOUT = 5


class EnvFileError(NextStepError, LookupError):
    """A problem and its next step."""


@dataclass(frozen=True)
class AppUrls:
    env_file: Path
    database_url: str
    redis_url: str


def find_env_file(app_dir: str | Path, env_file: str | Path = "") -> Path:
    """``env_file`` if given (relative to ``app_dir``), else ``.env``, else ``.env.example``."""
    if env_file:
        path = Path(env_file).expanduser()
        path = path if path.is_absolute() or not str(app_dir) else Path(app_dir).expanduser() / path
        if not path.is_file():
            raise EnvFileError(f"env file {path} does not exist", "check the parameter env_file")
        return path
    if not str(app_dir).strip():
        raise EnvFileError(
            "no app repository given (app_dir is empty)",
            "set the parameter app_dir (or RUNBOOK_APP_DIR) to the app's folder",
        )
    folder = Path(app_dir).expanduser()
    if not folder.is_dir():
        raise EnvFileError(f"app_dir {folder} does not exist", "check the parameter app_dir")
    for name in (".env", ".env.example"):
        if (folder / name).is_file():
            return folder / name
    raise EnvFileError(
        f"neither .env nor .env.example in {folder}",
        "run task 1.9 (it writes .env.example), then `cp .env.example .env`",
    )


def read_urls(app_dir: str | Path, env_file: str | Path = "") -> AppUrls:
    """The app's DATABASE_URL and REDIS_URL, from its env file; an app that keeps them in separate
    keys (``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_DB``...) gets the URL those keys make."""
    path = find_env_file(app_dir, env_file)
    values = dotenv_values(path)
    values = {**_urls_from_separate_keys(path), **{k: v for k, v in values.items() if v}}
    missing = [k for k in ("DATABASE_URL", "REDIS_URL") if not values.get(k)]
    if missing:
        raise EnvFileError(
            f"{path.name} has no {' and no '.join(missing)}",
            f"run task 1.9, or add {missing[0]}=... to {path}",
        )
    return AppUrls(
        env_file=path, database_url=str(values["DATABASE_URL"]), redis_url=str(values["REDIS_URL"])
    )


def _urls_from_separate_keys(path: Path) -> dict[str, str]:
    env = appenv.environment_of(path.read_text(encoding="utf-8"), path.name)
    urls = {}
    for key, ep in (("DATABASE_URL", env.database), ("REDIS_URL", env.redis)):
        if ep is not None and not ep.url_key and ep.host:
            urls[key] = appenv.url_of(ep)
    return urls


def redact(url: str) -> str:
    """The URL with its password replaced (for tables and messages)."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":[REDACTED]@")
        url = parts._replace(netloc=netloc).geturl()
    return scrub(url)


def expected_port(variable: str, default: int, app_dir: Path | None = None) -> int:
    """The host port compose publishes: the shell's variable, else the app's ``.env`` (compose reads it)."""
    value = os.environ.get(variable)
    if not value and app_dir is not None and (app_dir / ".env").is_file():
        value = dotenv_values(app_dir / ".env").get(variable)
    try:
        return int(value or default)
    except ValueError:
        return default


def check_urls(check: Checklist, urls: AppUrls) -> dict[str, bool]:
    """Both URLs point at this machine, on the ports the compose services publish.

    Returns, per key, whether the URL's host is local (only those are connected to).
    """
    local: dict[str, bool] = {}
    for key, url, scheme, variable, default in (
        ("DATABASE_URL", urls.database_url, ("postgres", "postgresql"), "POSTGRES_PORT", 5432),
        ("REDIS_URL", urls.redis_url, ("redis",), "REDIS_PORT", 6379),
    ):
        parts = urlsplit(url)
        expected = expected_port(variable, default, urls.env_file.parent)
        port = parts.port or default
        local[key] = parts.hostname in LOCAL_HOSTS
        good = parts.scheme in scheme and parts.hostname in LOCAL_HOSTS and port == expected
        check(
            f"{key} points at localhost:{expected}",
            good,
            f"{redact(url)} (from {urls.env_file.name})",
            hint=f"set {key} in {urls.env_file} to the local service "
            f"(host localhost, port {expected} = {variable}); task 1.9 writes the localhost URLs",
        )
    return local


def postgres_hint(error: str) -> str:
    low = error.lower()
    if "password authentication failed" in low or "authentication failed" in low or "role" in low:
        return (
            "the credentials in DATABASE_URL do not match the compose service's POSTGRES_USER / "
            "POSTGRES_PASSWORD. The data volume keeps the password of its first start: fix .env, or reset "
            "the volume (`docker compose down -v`, deletes the local data)"
        )
    if "database" in low and "does not exist" in low:
        return "the database in DATABASE_URL differs from POSTGRES_DB of the compose service: align them"
    if "refused" in low or "could not connect" in low or "connection failed" in low or "timeout" in low:
        return "nothing answers on that host/port: is task 1.4 done (`docker compose ps`)? Is the port right?"
    return "see the error; `docker compose logs postgres` shows the server side"


def redis_hint(error: str) -> str:
    low = error.lower()
    if "auth" in low or "wrongpass" in low or "password" in low:
        return "REDIS_URL's password does not match the Redis service (the local service has none by default)"
    if "refused" in low or "connect" in low or "timeout" in low:
        return "nothing answers on that host/port: is task 1.4 done (`docker compose ps`)? Is the port right?"
    return "see the error; `docker compose logs redis` shows the server side"


def refused_hint(url: str, key: str, app_dir: str | Path = "") -> str:
    """A refused connection's first cause (engine, container, port), for the service behind ``key``."""
    parts = urlsplit(url)
    default = 5432 if key == "DATABASE_URL" else 6379
    project, service = "", ""
    if str(app_dir).strip():
        from helpers.services import compose

        try:
            found = compose.load(app_dir)
        except Exception:  # no compose file, no CLI: the diagnosis goes by the port alone
            pass
        else:
            project = found.name
            service = next((s.name for s in found.services.values() if s.url_key == key), "")
    return diagnose.refused_hint(parts.hostname or "localhost", parts.port or default, project, service)


def _error(exc: BaseException) -> str:
    return scrub(" ".join(f"{type(exc).__name__}: {exc}".split()))[:300]


def check_postgres(check: Checklist, url: str, major: int = POSTGRES_MAJOR, app_dir: str | Path = "") -> None:
    """Connect, ``select version()``, check the major version, write and read a temporary table.

    A refused connection's hint is its first cause (:func:`refused_hint`; ``app_dir`` names the compose
    project whose service should answer).
    """
    import psycopg

    try:
        conn = psycopg.connect(url, connect_timeout=TIMEOUT, autocommit=True)
    except Exception as exc:  # every connection problem becomes a row with its hint
        check(
            "PostgreSQL accepts the connection",
            False,
            f"{redact(url)}: {_error(exc)}",
            refused_hint(url, "DATABASE_URL", app_dir)
            if diagnose.is_refused(str(exc))
            else postgres_hint(str(exc)),
        )
        return
    with conn:
        check("PostgreSQL accepts the connection", True, redact(url))
        version = conn.execute("select version()").fetchone()[0]
        number = int(conn.execute("show server_version_num").fetchone()[0])
        check(
            f"PostgreSQL major version is {major}",
            number // 10000 == major,
            version.split(",")[0],
            hint=f"the server is not PostgreSQL {major}: another server holds the port, or the image "
            "(POSTGRES_IMAGE) is wrong; `docker compose ps` shows what runs",
        )
        token = uuid.uuid4().hex
        try:
            conn.execute("create temp table runbook_probe (id serial primary key, token text not null)")
            conn.execute("insert into runbook_probe (token) values (%s)", (token,))
            row = conn.execute("select token from runbook_probe where token = %s", (token,)).fetchone()
        except Exception as exc:  # permission or disk problems
            check("PostgreSQL writes and reads a row", False, _error(exc), postgres_hint(str(exc)))
            return
        check(
            "PostgreSQL writes and reads a row",
            row is not None and row[0] == token,
            "temporary table: insert + select" if row else "row not found",
            hint="the server accepted the write but did not return it: check `docker compose logs postgres`",
        )


def check_redis(check: Checklist, url: str, major: int = REDIS_MAJOR, app_dir: str | Path = "") -> None:
    """PING, the server's major version from INFO, then SET/GET/DEL of a unique key (hints: as
    :func:`check_postgres`)."""
    import redis

    conn = redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
    try:
        pong = conn.ping()
    except Exception as exc:
        hint = (
            refused_hint(url, "REDIS_URL", app_dir) if diagnose.is_refused(str(exc)) else redis_hint(str(exc))
        )
        check("Redis answers PING", False, f"{redact(url)}: {_error(exc)}", hint)
        conn.close()
        return
    try:
        check("Redis answers PING", pong, f"{redact(url)}: PONG" if pong else "no PONG", redis_hint(""))
        version = str(conn.info("server").get("redis_version", ""))
        check(
            f"Redis major version is {major}",
            version.split(".")[0] == str(major),
            f"redis_version {version}",
            hint=f"the server is not Redis {major}: another server holds the port, or REDIS_IMAGE is wrong",
        )
        key, value = f"runbook:probe:{uuid.uuid4().hex}", uuid.uuid4().hex
        try:
            conn.set(key, value, ex=60)
            got = conn.get(key)
            deleted = conn.delete(key)
        except Exception as exc:  # read-only replica, OOM, ...
            check("Redis SET/GET/DEL", False, _error(exc), redis_hint(str(exc)))
            return
        check(
            "Redis SET/GET/DEL",
            got == value.encode() and deleted == 1,
            "set, read back and deleted a unique key" if got == value.encode() else f"read back {got!r}",
            hint="Redis did not return what was written: check `docker compose logs redis`",
        )
    finally:
        conn.close()


def check_app_env(check: Checklist, app_dir: str | Path, env_file: str | Path = "") -> AppUrls | None:
    """Task 1.5's full verification: the env file's URLs, then PostgreSQL and Redis for real."""
    try:
        urls = read_urls(app_dir, env_file)
    except EnvFileError as exc:
        check("app env file has DATABASE_URL and REDIS_URL", False, exc.problem, hint=exc.next_step)
        return None
    check("app env file has DATABASE_URL and REDIS_URL", True, str(urls.env_file))
    local = check_urls(check, urls)
    for key, probe in (("DATABASE_URL", check_postgres), ("REDIS_URL", check_redis)):
        url = urls.database_url if key == "DATABASE_URL" else urls.redis_url
        if local[key]:
            probe(check, url, app_dir=app_dir)
        else:
            check(
                f"{key} not tried",
                False,
                f"{redact(url)} is not on this machine",
                hint=f"point {key} at localhost first (task 1.9), then re-run this check",
            )
    return urls


def show_urls(app_dir: str | Path, env_file: str | Path = "") -> AppUrls | None:
    """Show which env file is used and its two URLs (passwords redacted); never raises."""
    from helpers.core.display import show_table

    try:
        urls = read_urls(app_dir, env_file)
    except EnvFileError as exc:
        show_table(("problem", "next step"), [(exc.problem, exc.next_step)], title="App env file")
        return None
    show_table(
        ("key", "value"),
        [("DATABASE_URL", redact(urls.database_url)), ("REDIS_URL", redact(urls.redis_url))],
        title=f"URLs the app uses ({urls.env_file})",
    )
    return urls
