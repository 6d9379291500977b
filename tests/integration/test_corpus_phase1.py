"""Phase 1 (tasks 1.1 to 1.14) on every repository of the corpus, through the ``runbook`` command.

Each repository (``tests/fixtures/corpus/<name>``) is copied and git-initialised, gets a compose
project of its own and free ports, and then:

1. ``runbook run phase1 --to 1.14``: a repository with lines no rule is sure about stops at the first
   task that meets one, its verification failing with ``file:line``; the lines still unsure (read
   again, independently of the notebooks) are exactly the ``unsure`` lines of ``<name>.yaml``;
2. ``runbook resume -p accept all`` (the explicit acceptance) passes to 1.14, which commits;
3. the checks of false docs (:mod:`helpers.app.docchecks`), run here on the committed repository and
   not by the notebooks, find nothing: every command exists, no VM text, no dead link, the identity
   kept, ``git status`` clean; the expectations' ``keep`` / ``drop`` / ``format`` hold; the test's
   random ports are in ``.env`` only, never in the committed ``.env.example``;
4. a second run (``--from 1.7 --to 1.14``: the tasks that edit the app, and 1.14, which verifies 1.1
   to 1.5 again) passes, reports only ``ok``/``skipped`` steps, and leaves every file, ``HEAD`` and
   ``git status`` as they were.

Marked ``engine``: tasks 1.4, 1.5 and 1.14 start and reach the real PostgreSQL and Redis containers.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from corpussupport import copy, expectations, names
from testsupport import runbook_cli

from helpers.app import docchecks, packagejson, profile, references
from helpers.app.appfiles import newline_of
from helpers.host.ports import free_port
from helpers.runner import sampleapp
from helpers.services import appenv

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def git(app: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=app, capture_output=True, text=True, check=True).stdout.strip()


def files_hash(app: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(app.rglob("*")):
        if ".git" not in path.relative_to(app).parts and path.is_file():
            digest.update(path.relative_to(app).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(params=names())
def corpus_app(request, tmp_path_factory) -> Iterator[tuple[str, sampleapp.Sandbox]]:
    """A copy of one corpus repository with its own compose project, ports and runner folders."""
    name = request.param
    work = tmp_path_factory.mktemp(f"corpus-{name}")
    app = copy(name, work / "app")
    project = f"rb-corpus-{uuid.uuid4().hex[:8]}"
    env = {
        "RUNBOOK_APP_DIR": str(app),
        "COMPOSE_PROJECT_NAME": project,
        "POSTGRES_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
        "RUNBOOK_STATE_DIR": str(work / "state"),
        "RUNBOOK_RUNS_DIR": str(work / "runs"),
        "RUNBOOK_SECRETS_FILE": str(work / "no-secrets.env"),
        **sampleapp.service_images(),
    }
    box = sampleapp.Sandbox(work=work, app_dir=app, project=project, env=env)
    try:
        yield name, box
    finally:
        problems = box.teardown()
        assert not problems, problems


def runbook(box: sampleapp.Sandbox, *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RUNBOOK_") and k not in sampleapp.SANDBOX_CLEARED
    }
    env.update(box.env, COLUMNS="160")
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        env.pop(name, None)  # the app's own identity, not a developer's
    return runbook_cli(list(args), env, timeout=900)


def last_ledger(box: sampleapp.Sandbox) -> dict:
    runs = [
        p for p in Path(box.env["RUNBOOK_RUNS_DIR"]).iterdir() if p.is_dir() and (p / "ledger.json").is_file()
    ]
    return json.loads((max(runs, key=lambda p: p.name) / "ledger.json").read_text())


def unsure_now(app: Path, baseline: str) -> list:
    """The lines no rule is sure about, read from the repository as it is (not from a notebook)."""
    rules = references.rules_for(app, rev=baseline)
    return references.plan(app, rules, "all").unsure


def test_phase1_commits_true_docs_in_every_corpus_repository(corpus_app) -> None:
    name, box = corpus_app
    app, want = box.app_dir, expectations(name)
    baseline = git(app, "rev-parse", "HEAD")
    before = profile.read(app, rev=baseline)
    expected_unsure = {(u["file"], u["text"]) for u in want["unsure"]}

    # 1. without acceptance: stops at the first task that meets a line no rule is sure about
    first = runbook(box, "run", "phase1", "--to", "1.14", "-p", "commit", "true")
    if expected_unsure:
        assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
        failed = [t for t in last_ledger(box)["tasks"] if t["status"] == "failed"]
        assert failed and failed[0]["id"] in {"1.6", "1.9", "1.10", "1.11", "1.12"}, failed
        assert "every line about the VM was rewritten by a sure rule, or accepted" in first.stdout + str(
            failed
        )
        listed = unsure_now(app, baseline)
        covered = {(u.path, line) for u in listed for line in u.text.splitlines()}
        assert expected_unsure <= covered, expected_unsure - covered
        assert all(any((u.path, line) in expected_unsure for line in u.text.splitlines()) for u in listed), [
            (u.where, u.text) for u in listed
        ]
        for u in listed:  # untouched, each with a proposal
            assert u.proposal and u.text.splitlines()[0] in (app / u.path).read_text().splitlines()

        # 2. the explicit acceptance: the proposals are applied and the phase goes on to the commit
        second = runbook(box, "resume", "-p", "accept", "all")
        assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-3000:]
    else:
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-3000:]
    head = git(app, "rev-parse", "HEAD")
    assert head != baseline and git(app, "rev-list", "--count", f"{baseline}..HEAD") == "1"

    # 3. the checks of false docs, run here on what was committed
    rules = references.rules_for(app, rev=baseline)
    found = docchecks.findings(app, before, rules, committed=True)
    assert found == [], "\n".join(str(f) for f in found)
    assert unsure_now(app, baseline) == []
    assert git(app, "status", "--porcelain") == ""
    now = profile.read(app)
    keep = want["keep"]
    assert (now.database.user, now.database.database) == (keep["database"]["user"], keep["database"]["name"])
    assert now.redis.index == keep["redis_index"]
    assert list(now.env_keys) == keep["env_keys"]
    scripts = packagejson.parse((app / "package.json").read_text())["scripts"]
    assert {k: scripts.get(k) for k in keep["scripts"]} == keep["scripts"]
    assert not set(want["drop"]["scripts"]) & set(scripts)
    assert all((app / rel).is_file() for rel in keep["files"])
    assert not any((app / rel).exists() for rel in want["drop"]["files"])
    for line in keep["lines"]:
        assert line["text"] in (app / line["file"]).read_text().splitlines(), line
    for rel, fmt in want["format"].items():
        text = (app / rel).read_bytes().decode()
        assert newline_of(text) == {"lf": "\n", "crlf": "\r\n"}[fmt["newline"]], rel
        assert text.endswith("\n") == fmt["final_newline"], rel
        if "indent" in fmt:
            assert packagejson.indent_unit(text) == fmt["indent"], rel
    example = (app / ".env.example").read_text()
    for port in (box.env["POSTGRES_PORT"], box.env["REDIS_PORT"]):
        assert port not in example, "the test's ports must never be committed into the app"
    local = appenv.environment_of((app / ".env").read_text())
    assert local.database.port == int(box.env["POSTGRES_PORT"]) and local.redis.port == int(
        box.env["REDIS_PORT"]
    )

    # 4. a second run of the tasks that edit the app changes nothing (1.14 verifies 1.1 to 1.5 again)
    tree = files_hash(app)
    again = runbook(
        box, "run", "phase1", "--from", "1.7", "--to", "1.14", "-p", "commit", "true", "-p", "accept", "all"
    )
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-3000:]
    moved = {t["id"]: t["steps"] for t in last_ledger(box)["tasks"] if set(t["steps"]) - {"ok", "skipped"}}
    assert not moved, moved
    assert files_hash(app) == tree and git(app, "rev-parse", "HEAD") == head
    assert git(app, "status", "--porcelain") == ""
