"""Task 1.5 against real PostgreSQL 15 and Redis 7 services (a private compose project)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from services_support import ServicesEnv, services_env

from helpers.core.checks import Checklist
from helpers.services import connectivity

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[ServicesEnv]:
    with services_env(tmp_path_factory.mktemp("connectivity"), start=True) as env:
        yield env


def details(check: Checklist) -> str:
    return " ".join(f"{r.detail} {r.hint}" for r in check.results)


def test_the_app_env_reaches_both_servers(services):
    check = Checklist("1.5")
    urls = connectivity.check_app_env(check, services.app_dir)
    assert urls is not None and urls.env_file == services.app_dir / ".env"
    assert not check.failures, check.failures
    assert [r.name for r in check.results] == [
        "app env file has DATABASE_URL and REDIS_URL",
        f"DATABASE_URL points at localhost:{services.pg_port}",
        f"REDIS_URL points at localhost:{services.redis_port}",
        "PostgreSQL accepts the connection",
        "PostgreSQL major version is 15",
        "PostgreSQL writes and reads a row",
        "Redis answers PING",
        "Redis major version is 7",
        "Redis SET/GET/DEL",
    ]
    assert services.password not in details(check)


def test_env_example_is_used_without_env(services, tmp_path):
    (tmp_path / ".env.example").write_text(
        f"# comment\nDATABASE_URL={services.database_url()}\nREDIS_URL={services.redis_url()}\nOTHER=1\n"
    )
    check = Checklist("1.5")
    urls = connectivity.check_app_env(check, tmp_path)
    assert urls is not None and urls.env_file.name == ".env.example"
    assert [r.name for r in check.failures] == [], check.failures


def test_a_wrong_password_fails_with_the_credentials_hint(services):
    check = Checklist("wrong password")
    connectivity.check_postgres(check, services.database_url(password="not-the-password"))
    assert [r.name for r in check.failures] == ["PostgreSQL accepts the connection"]
    failure = check.failures[0]
    assert "password authentication failed" in failure.detail
    assert "POSTGRES_PASSWORD" in failure.hint and "down -v" in failure.hint
    assert "not-the-password" not in failure.detail


def test_a_wrong_database_names_postgres_db(services):
    check = Checklist("wrong db")
    connectivity.check_postgres(check, services.database_url(db="no_such_db"))
    assert check.failures and "POSTGRES_DB" in check.failures[0].hint


def test_the_version_checks_can_fail_against_the_real_servers(services):
    check = Checklist("versions")
    connectivity.check_postgres(check, services.database_url(), major=14)
    connectivity.check_redis(check, services.redis_url(), major=6)
    assert [r.name for r in check.failures] == ["PostgreSQL major version is 14", "Redis major version is 6"]
    assert "PostgreSQL 15" in check.failures[0].detail and "redis_version 7." in check.failures[1].detail


def test_a_url_on_the_wrong_port_is_caught_before_connecting(services, tmp_path):
    (tmp_path / ".env").write_text(
        f"DATABASE_URL={services.database_url()}\nREDIS_URL=redis://localhost:{services.redis_port + 1}\n"
    )
    check = Checklist("1.5")
    connectivity.check_app_env(check, tmp_path)
    names = [r.name for r in check.failures]
    assert f"REDIS_URL points at localhost:{services.redis_port}" in names
    assert "Redis answers PING" in names
