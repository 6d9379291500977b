"""The local backup (operation ``backup`` with ``local=True``): ``pg_dump`` through compose, read back.

A private compose project of the real ``docker-compose.yml`` (its own name, free ports, torn down at the
end); a table with rows in the local database; the backup written by the operation's helper, then read
back by ``pg_restore`` in the service's container, and restored into a scratch database of the same
server to compare the rows. A truncated file fails the verification.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from services_support import services_env

from helpers.core.checks import Checklist
from helpers.ops import backups

pytestmark = pytest.mark.engine


def test_local_backup_is_written_read_back_and_restores_the_rows(tmp_path: Path) -> None:
    with services_env(tmp_path, start=True) as services:
        with psycopg.connect(services.database_url(), autocommit=True) as conn:
            conn.execute("create table notes (id serial primary key, body text)")
            conn.execute("insert into notes (body) select 'note ' || n from generate_series(1, 25) n")
        step, local = backups.local_backup(services.app_dir, tmp_path / "backups", dry_run=True)
        assert step.status == "would change" and local is None and not (tmp_path / "backups").exists()

        step, local = backups.local_backup(services.app_dir, tmp_path / "backups")
        assert step.status == "changed" and local is not None
        assert local.path.parent == tmp_path / "backups" and local.size > 0 and local.tables == 1
        assert local.path.stat().st_mode & 0o077 == 0  # the app's data: this user only
        check = Checklist("local backup")
        backups.check_local(check, local, services.app_dir)
        assert not check.failures

        # restored into a scratch database of the same server, the rows are there
        with psycopg.connect(services.database_url(), autocommit=True) as conn:
            conn.execute("create database scratch")
        with local.path.open("rb") as dump:
            done = subprocess.run(
                ["docker", "compose", "-p", services.project, "exec", "-T", "postgres", "pg_restore", "-U",
                 "postgres", "-d", "scratch"],
                stdin=dump, cwd=services.app_dir, capture_output=True, timeout=120,
            )  # fmt: skip
        assert done.returncode == 0, done.stderr
        with psycopg.connect(services.database_url(db="scratch"), autocommit=True) as conn:
            assert conn.execute("select count(*) from notes").fetchone()[0] == 25

        # a truncated copy does not pass
        broken = local.path.with_name("broken.dump")
        broken.write_bytes(local.path.read_bytes()[: local.size // 3])
        check = Checklist("broken")
        backups.check_local(check, backups.LocalBackup(broken, broken.stat().st_size, 0), services.app_dir)
        assert [r.name for r in check.failures] == ["pg_restore reads it back"]
