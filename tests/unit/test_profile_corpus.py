"""The profile reader over every repository of the corpus: what each ``<name>.yaml`` says it must find.

The expectations files are also checked against the repositories themselves (the lines they cite
are there, the formats they describe are the files'), so the corpus cannot drift from them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corpussupport import CORPUS, copy, expectations, names

from helpers.app import packagejson, profile
from helpers.app.appfiles import newline_of

REPOS = names()


def test_the_corpus_has_at_least_four_repositories_each_with_its_expectations():
    assert len(REPOS) >= 4
    for name in REPOS:
        assert (CORPUS / f"{name}.yaml").is_file(), name


@pytest.fixture(scope="module", params=REPOS)
def read(request, tmp_path_factory) -> tuple[str, dict, profile.Profile, Path]:
    """A git copy of the repository (as the tasks see it) and its profile."""
    name = request.param
    app = copy(name, tmp_path_factory.mktemp(name) / "app")
    return name, expectations(name), profile.read(app), app


def test_package_manager_packages_and_docs(read):
    _, want, got, _ = read
    w = want["profile"]
    assert got.package_manager == w["package_manager"]
    assert {p.path: p.name for p in got.packages} == w["packages"]
    assert list(got.docs) == w["docs"]


def test_every_script_is_classified(read):
    _, want, got, _ = read
    assert {s.label: list(s.kinds) for s in got.all_scripts()} == want["profile"]["scripts"]


def test_picks_and_start_commands(read):
    _, want, got, _ = read
    for kind, command in want["profile"]["picks"].items():
        pick = got.script_for(kind)
        assert pick.command == command, (kind, pick.reason)
        assert bool(pick.reason)
    commands, _ = got.commands_for(profile.DEV_WEB, profile.DEV_WORKER)
    assert commands == want["profile"]["start"]


def test_env_keys_database_and_redis(read):
    _, want, got, _ = read
    w = want["profile"]
    assert list(got.env_keys) == w["env_keys"]
    db, rd = got.database, got.redis
    assert db is not None and rd is not None
    assert {
        "user": db.user,
        "password": db.password,
        "name": db.database,
        "host": db.host,
        "port": db.port,
    } == w["database"]
    assert {"host": rd.host, "port": rd.port, "index": rd.index} == w["redis"]
    if "database_sources" in w:
        assert db.sources == w["database_sources"]


def test_unclear_is_what_the_expectations_say(read):
    _, want, got, _ = read
    expected = want["profile"]["unclear"]
    assert len(got.unclear) == len(expected), got.unclear
    for text in expected:
        assert any(text in u for u in got.unclear), (text, got.unclear)


def test_the_profile_of_the_baseline_commit_is_the_same(read):
    _, _, got, app = read
    assert profile.read(app, rev="HEAD").to_dict() | {"root": ""} == got.to_dict() | {"root": ""}


# --------------------------------------------------------------------------- the expectations match the files


@pytest.mark.parametrize("name", REPOS)
def test_formats_are_as_described(name):
    root = CORPUS / name
    for rel, fmt in expectations(name)["format"].items():
        text = (root / rel).read_bytes().decode("utf-8")
        assert newline_of(text) == {"lf": "\n", "crlf": "\r\n"}[fmt["newline"]], rel
        assert text.endswith("\n") == fmt["final_newline"], rel
        if "indent" in fmt:
            assert packagejson.indent_unit(text) == fmt["indent"], rel
        if fmt.get("export"):
            assert "\nexport " in text, rel


@pytest.mark.parametrize("name", REPOS)
def test_cited_lines_files_and_scripts_exist(name):
    want = expectations(name)
    root = CORPUS / name
    for item in want["unsure"]:
        lines = (root / item["file"]).read_text(encoding="utf-8").splitlines()
        assert lines[item["line"] - 1] == item["text"], item
    for item in want["keep"]["lines"]:
        assert item["text"] in (root / item["file"]).read_text(encoding="utf-8").splitlines(), item
    for rel in want["keep"]["files"] + want["drop"]["files"]:
        assert (root / rel).is_file(), rel
    scripts = packagejson.parse((root / "package.json").read_text(encoding="utf-8"))["scripts"]
    assert {k: scripts[k] for k in want["keep"]["scripts"]} == want["keep"]["scripts"]
    assert set(want["drop"]["scripts"]) <= set(scripts)
    assert set(want["keep"]["scripts"]) | set(want["drop"]["scripts"]) == set(scripts)


def test_what_phase_1_removes_is_what_the_expectations_drop(read):
    _, want, got, app = read
    assert sorted(s.label for s in profile.vm_scripts(got)) == sorted(want["drop"]["scripts"])
    assert profile.vm_files(got) <= set(want["drop"]["files"])
    assert all(not rel.startswith("docs/") for rel in profile.vm_files(got)), "pages go as VM pages"
    assert profile.vm_hosts(got) == {want["profile"]["database"]["host"]}
    assert profile.baseline(app).to_dict() | {"root": ""} == got.to_dict() | {"root": ""}
