"""helpers.services.connectivity without servers: env file choice, URL checks, hints, redaction.

A refused connection is real here (a free port on 127.0.0.1 nobody listens on).
"""

from __future__ import annotations

import pytest
from testsupport import free_port

from helpers.core.checks import Checklist
from helpers.services import connectivity as cn

LOCAL = "DATABASE_URL=postgresql://postgres:pw1234@localhost:5432/app\nREDIS_URL=redis://localhost:6379\n"


@pytest.fixture(autouse=True)
def _default_ports(monkeypatch):
    monkeypatch.delenv("POSTGRES_PORT", raising=False)
    monkeypatch.delenv("REDIS_PORT", raising=False)


def test_env_is_preferred_over_env_example(tmp_path):
    (tmp_path / ".env.example").write_text(LOCAL)
    assert cn.find_env_file(tmp_path).name == ".env.example"
    (tmp_path / ".env").write_text(LOCAL)
    assert cn.find_env_file(tmp_path).name == ".env"
    (tmp_path / "other.env").write_text(LOCAL)
    assert cn.find_env_file(tmp_path, "other.env") == tmp_path / "other.env"


def test_missing_files_say_what_to_do(tmp_path):
    with pytest.raises(cn.EnvFileError) as err:
        cn.find_env_file(tmp_path)
    assert "task 1.9" in err.value.next_step
    with pytest.raises(cn.EnvFileError, match="app_dir"):
        cn.find_env_file("")
    with pytest.raises(cn.EnvFileError, match="env_file"):
        cn.find_env_file(tmp_path, "nope.env")


def test_missing_keys_are_named(tmp_path):
    (tmp_path / ".env").write_text("REDIS_URL=redis://localhost:6379\n")
    with pytest.raises(cn.EnvFileError, match="no DATABASE_URL"):
        cn.read_urls(tmp_path)


def test_redact_hides_the_password():
    assert cn.redact("postgresql://postgres:pw1234@localhost:5432/app") == (
        "postgresql://postgres:[REDACTED]@localhost:5432/app"
    )
    assert cn.redact("redis://localhost:6379") == "redis://localhost:6379"


def test_local_urls_pass(tmp_path):
    (tmp_path / ".env").write_text(LOCAL)
    check = Checklist("urls")
    local = cn.check_urls(check, cn.read_urls(tmp_path))
    assert not check.failures and local == {"DATABASE_URL": True, "REDIS_URL": True}
    assert "pw1234" not in " ".join(r.detail for r in check.results)


def test_vm_urls_fail_and_are_not_tried(tmp_path):
    (tmp_path / ".env.example").write_text(
        "DATABASE_URL=postgresql://postgres:postgres@192.168.64.5:5432/app\nREDIS_URL=redis://192.168.64.5:6379\n"
    )
    check = Checklist("1.5")
    cn.check_app_env(check, tmp_path)
    names = [r.name for r in check.failures]
    assert "DATABASE_URL points at localhost:5432" in names and "DATABASE_URL not tried" in names
    assert "REDIS_URL not tried" in names and "task 1.9" in check.failures[0].hint


def test_port_must_match_the_compose_port(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(LOCAL)
    monkeypatch.setenv("POSTGRES_PORT", "5433")
    check = Checklist("urls")
    cn.check_urls(check, cn.read_urls(tmp_path))
    assert [r.name for r in check.failures] == ["DATABASE_URL points at localhost:5433"]
    assert "POSTGRES_PORT" in check.failures[0].hint


def test_port_from_the_app_env_file_counts_like_compose_reads_it(tmp_path):
    (tmp_path / ".env").write_text(LOCAL.replace("6379", "6380") + "REDIS_PORT=6380\n")
    check = Checklist("urls")
    cn.check_urls(check, cn.read_urls(tmp_path))
    assert not check.failures


def test_refused_connections_fail_with_the_task_1_4_hint():
    port = free_port()
    check = Checklist("refused")
    cn.check_postgres(check, f"postgresql://postgres:pw1234@127.0.0.1:{port}/app")
    cn.check_redis(check, f"redis://127.0.0.1:{port}")
    assert len(check.failures) == 2
    assert all("task 1.4" in f.hint for f in check.failures)
    assert "pw1234" not in " ".join(f.detail for f in check.failures)


@pytest.mark.parametrize(
    ("error", "word"),
    [
        ('FATAL: password authentication failed for user "postgres"', "POSTGRES_PASSWORD"),
        ('FATAL: database "shop" does not exist', "POSTGRES_DB"),
        ("connection refused", "task 1.4"),
    ],
)
def test_postgres_hints(error, word):
    assert word in cn.postgres_hint(error)


def test_redis_hints():
    assert "password" in cn.redis_hint("WRONGPASS invalid username-password pair")
    assert "task 1.4" in cn.redis_hint("Error 111 connecting to localhost:6379. Connection refused.")
