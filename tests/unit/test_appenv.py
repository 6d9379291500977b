"""helpers.services.appenv: where the app finds PostgreSQL and Redis, and the URL that makes."""

from __future__ import annotations

from helpers.services import appenv, connectivity


def test_environment_of_reads_urls_separate_keys_and_their_sources():
    env = appenv.environment_of(
        "export POSTGRES_HOST=10.13.37.5\nexport POSTGRES_USER=pulse\nexport POSTGRES_DB=pulse_dev\n"
        'export DATABASE_URL="postgresql://${POSTGRES_USER}:x@${POSTGRES_HOST}:5432/${POSTGRES_DB}"\n'
        "REDIS_HOST=192.168.64.9\nREDIS_PORT=6379\nREDIS_DB=1\n"
    )
    db, rd = env.database, env.redis
    assert (db.user, db.database, db.host, db.url_key) == ("pulse", "pulse_dev", "10.13.37.5", "DATABASE_URL")
    assert db.sources["host"] == "POSTGRES_HOST" and db.sources["port"] == "DATABASE_URL"
    assert (rd.host, rd.port, rd.index, rd.url_key) == ("192.168.64.9", 6379, 1, None)
    assert rd.sources == {"host": "REDIS_HOST", "port": "REDIS_PORT", "database": "REDIS_DB"}


def test_url_of_separate_keys_and_task_1_5_reads_it(tmp_path):
    env = appenv.environment_of("REDIS_HOST=localhost\nREDIS_PORT=6380\nREDIS_DB=1\nREDIS_PASSWORD=p@ss\n")
    assert appenv.url_of(env.redis) == "redis://:p%40ss@localhost:6380/1"
    (tmp_path / ".env").write_text(
        'export DATABASE_URL="postgres://queue:queue@localhost:5432/jobs"\n'
        "export REDIS_HOST=localhost\nexport REDIS_PORT=6380\nexport REDIS_DB=1\n"
    )
    urls = connectivity.read_urls(tmp_path)
    assert urls.redis_url == "redis://localhost:6380/1"
    assert urls.database_url == "postgres://queue:queue@localhost:5432/jobs"
