"""helpers.core.settings: one declaration per environment variable, and the only reader of them."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path

import pytest

from helpers.core import settings
from helpers.core.paths import PROJECT_ROOT
from helpers.core.secrets import SECRETS
from helpers.core.settings import SettingError, Settings, env

DECLARED = {v.name: v for v in Settings.variables()}


def test_attributes_read_the_environment_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNBOOK_DRY_RUN", raising=False)
    assert env.dry_run is False
    monkeypatch.setenv("RUNBOOK_DRY_RUN", "1")
    assert env.dry_run is True
    monkeypatch.setenv("RUNBOOK_SSH_PORT", "2222")
    assert env.ssh_port == 2222


@pytest.mark.parametrize(
    ("raw", "value"), [("1", True), ("TRUE", True), ("yes", True), ("0", False), ("off", False), ("", False)]
)
def test_booleans(raw: str, value: bool) -> None:
    assert Settings({"RUNBOOK_ALLOW_PAID": raw}).allow_paid is value


def test_a_default_true_boolean_is_turned_off_only_by_a_no() -> None:
    assert Settings({}).check_github is True
    assert Settings({"RUNBOOK_CHECK_GITHUB": ""}).check_github is True
    assert Settings({"RUNBOOK_CHECK_GITHUB": "0"}).check_github is False


@pytest.mark.parametrize(
    ("name", "raw"), [("RUNBOOK_ALLOW_PAID", "maybe"), ("RUNBOOK_SSH_PORT", "twenty-two")]
)
def test_a_value_of_the_wrong_kind_names_the_variable(name: str, raw: str) -> None:
    attr = DECLARED[name].attr
    with pytest.raises(SettingError, match=name):
        getattr(Settings({name: raw}), attr)


def test_paths_expand_the_home_folder() -> None:
    assert Settings({"RUNBOOK_STATE_DIR": "~/x"}).state_dir == Path("~/x").expanduser()
    assert Settings({}).state_dir == PROJECT_ROOT / ".work" / "state"


def test_names_are_unique_and_every_variable_has_a_meaning() -> None:
    names = [v.name for v in Settings.variables()]
    assert len(names) == len(set(names))
    assert all(v.help and v.group for v in Settings.variables())


def test_contributing_lists_every_variable_as_generated() -> None:
    text = (PROJECT_ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert settings.with_table(text) == text, "run: python -m helpers.core.settings --write CONTRIBUTING.md"
    for name in DECLARED:
        assert f"`{name}`" in text


def _project_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [PROJECT_ROOT / p for p in listed if (PROJECT_ROOT / p).is_file()]


def test_every_runbook_variable_named_anywhere_is_declared() -> None:
    """A RUNBOOK_* name in any file (code, notebooks, docs, scripts) is a setting or a secret."""
    seen: dict[str, str] = {}
    for path in _project_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for name in re.findall(r"\bRUNBOOK_[A-Z0-9_]*[A-Z0-9]\b", text):
            seen.setdefault(name, str(path.relative_to(PROJECT_ROOT)))
    undeclared = {n: where for n, where in seen.items() if n not in DECLARED and n not in SECRETS}
    assert not undeclared, f"declare these in helpers/core/settings.py: {undeclared}"


def _code_sources() -> list[tuple[str, str]]:
    """(where, python source) of every module, test, script and notebook code cell."""
    out = []
    for path in _project_files():
        rel = str(path.relative_to(PROJECT_ROOT))
        if path.suffix == ".py":
            out.append((rel, path.read_text(encoding="utf-8")))
        elif path.suffix == ".ipynb":
            nb = json.loads(path.read_text(encoding="utf-8"))
            for n, cell in enumerate(nb["cells"]):
                if cell["cell_type"] == "code":
                    src = "".join(cell["source"])
                    out.append(
                        (
                            f"{rel} cell {n}",
                            "\n".join(line for line in src.splitlines() if not line.startswith(("%", "!"))),
                        )
                    )
    return out


def _reads_of_environ(source: str) -> list[tuple[int, str]]:
    """Literal variable names read with os.environ.get / os.environ[...] / os.getenv (not writes)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        name = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func in ("os.environ.get", "os.getenv", "environ.get", "getenv", "os.environ.pop"):
                name = node.args[0].value
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) in ("os.environ", "environ")
            and isinstance(node.slice, ast.Constant)
        ):
            name = node.slice.value
        if isinstance(name, str):
            found.append((node.lineno, name))
    return found


def test_only_the_settings_module_reads_declared_variables() -> None:
    offenders = [
        f"{where}:{line} reads {name}"
        for where, source in _code_sources()
        if not where.startswith("helpers/core/settings.py")
        for line, name in _reads_of_environ(source)
        if name in DECLARED
    ]
    assert not offenders, "read these through helpers.core.settings.env:\n" + "\n".join(offenders)


def test_the_reader_scan_finds_a_direct_read() -> None:
    """The scan above can fail: it sees both spellings of a direct read."""
    src = 'import os\na = os.environ.get("RUNBOOK_DRY_RUN", "")\nb = os.environ["RUNBOOK_APP_DIR"]\n'
    assert [n for _, n in _reads_of_environ(src)] == ["RUNBOOK_DRY_RUN", "RUNBOOK_APP_DIR"]
    assert _reads_of_environ('import os\nos.environ["RUNBOOK_DRY_RUN"] = "1"\n') == []


def test_notebook_parameters_read_the_environment_through_env() -> None:
    from helpers.runner.params import parameters_cell

    for path in sorted((PROJECT_ROOT / "notebooks").glob("*/*.ipynb")):
        cell = parameters_cell(json.loads(path.read_text(encoding="utf-8"))) or ""
        assert "os.environ" not in cell and "getenv" not in cell, path.name
