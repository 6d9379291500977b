"""The non-secret state file that tasks hand to later tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.core import state


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RUNBOOK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNBOOK_SECRETS_FILE", str(tmp_path / "none.env"))
    return tmp_path / "state"


def test_update_load_get_and_forget(state_dir: Path) -> None:
    assert state.load("phase2") == {}
    state.update("phase2", droplet={"id": 7, "ipv4": "203.0.113.9"})
    state.update("phase2", project={"uuid": "abc"})
    assert state.load("phase2") == {"droplet": {"id": 7, "ipv4": "203.0.113.9"}, "project": {"uuid": "abc"}}
    assert state.get("phase2", "droplet")["id"] == 7
    assert json.loads((state_dir / "phase2.json").read_text())["project"] == {"uuid": "abc"}
    state.update("phase2", droplet={"id": 8})  # a section is replaced whole
    assert state.get("phase2", "droplet") == {"id": 8}
    state.forget("phase2", "droplet")
    assert state.get("phase2", "droplet") is None
    assert list(state_dir.iterdir()) == [state_dir / "phase2.json"]  # no temporary file left behind


def test_require_names_the_task_that_records_a_value() -> None:
    with pytest.raises(LookupError, match=r"run task 2\.2 first"):
        state.require("phase2", "droplet", "2.2")
    state.update("phase2", droplet={"id": 1})
    assert state.require("phase2", "droplet", "2.2") == {"id": 1}


@pytest.mark.parametrize(
    "sections",
    [
        {"coolify_api_token": "x"},
        {"droplet": {"root_password": "x"}},
        {"droplet": {"note": "dop_v1_" + "ab" * 32}},
        {"db": {"url": "postgres://app:s3cret@db:5432/app"}},
        {"list": ["fine", {"api_key": "x"}]},
    ],
)
def test_secrets_are_refused(sections: dict) -> None:
    with pytest.raises(state.SecretInState):
        state.update("phase2", **sections)
    assert state.load("phase2") == {}


def test_a_known_secret_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROD_REDIS_PASSWORD", "correct-horse-battery")
    with pytest.raises(state.SecretInState):
        state.update("phase2", redis={"note": "uses correct-horse-battery"})


def test_bad_files_and_names_get_clear_messages(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    (state_dir / "phase2.json").write_text("{broken")
    with pytest.raises(ValueError, match="fix or delete it"):
        state.load("phase2")
    with pytest.raises(ValueError, match="plain file stem"):
        state.path("../etc")
