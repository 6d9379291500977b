"""The GitHub stand-in's build job checks the commit out as ``actions/checkout`` does (a clone: modes 644
and 755), so its image builds share the classic builder's cache with the other builds of the same app: the
builder's cache compares file modes, and ``git archive`` alone writes 664. Real git, real tar."""

from __future__ import annotations

import subprocess
from pathlib import Path

from helpers.rehearse.builder import checkout


def _git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def test_the_checkout_has_the_modes_of_a_clone(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "package.json").write_text("{}\n")
    (repo / "scripts" / "run.sh").write_text("#!/bin/sh\n")
    (repo / "scripts" / "run.sh").chmod(0o755)
    _git(tmp_path, "init", "-q", str(repo))
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    out = checkout(repo, _git(repo, "rev-parse", "HEAD"), tmp_path / "work" / "src")
    clone = tmp_path / "clone"
    subprocess.run(["sh", "-c", 'umask 022 && git clone -q "$0" "$1"', str(repo), str(clone)], check=True)
    for rel in ("package.json", "scripts/run.sh", "scripts"):  # a hosted runner's umask is 022
        assert (out / rel).stat().st_mode == (clone / rel).stat().st_mode, rel
    assert (out / "package.json").stat().st_mode & 0o777 == 0o644
    assert (out / "scripts" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert not (tmp_path / "work" / "src.tar").exists()
