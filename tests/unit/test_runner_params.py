"""Declared parameters, the YAML file, injection and validation (secrets refused)."""

from __future__ import annotations

import nbformat
import pytest

from helpers.core.tasks import Task
from helpers.runner import params as P

CELL = """import os
app_dir = os.environ.get("RUNBOOK_APP_DIR", "")  # the app repository to change
dry_run = os.environ.get("RUNBOOK_DRY_RUN", "") == "1"    # show what would change
port: int = 5432  # host port
timeout = int(os.environ.get("TIMEOUT", "60"))  # seconds
allow_commit = False  # commit the changes
ratio = 1.5
names = ["a", "b"]  # a list
"""


def test_declared_in_source_reads_every_assignment_with_its_help() -> None:
    found = P.declared_in_source(CELL)
    assert list(found) == ["app_dir", "dry_run", "port", "timeout", "allow_commit", "ratio", "names"]
    assert found["app_dir"].help == "the app repository to change"
    assert found["dry_run"].default == 'os.environ.get("RUNBOOK_DRY_RUN", "") == "1"'
    kinds = {name: d.kind for name, d in found.items()}
    assert kinds == {
        "app_dir": "str",
        "dry_run": "bool",
        "port": "int",
        "timeout": "int",
        "allow_commit": "bool",
        "ratio": "float",
        "names": "any",
    }


def test_papermill_misses_the_projects_dry_run_convention_and_we_do_not(tmp_path) -> None:
    import papermill

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(CELL)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert "dry_run" not in papermill.inspect_notebook(str(path))  # its line parser skips `==` lines
    assert "dry_run" in P.declared_parameters(path)


def test_invalid_parameters_cell_is_reported() -> None:
    with pytest.raises(P.ParameterError, match="not valid Python"):
        P.declared_in_source("x = (\n")


def _setup():
    tasks = [
        Task("1.1", "a", "A", "automated", ()),
        Task("1.2", "b", "B", "automated", ("1.1",)),
        Task("1.3", "c", "C", "manual", ("1.2",)),
    ]
    declared = {
        "1.1": P.declared_in_source('app_dir = ""  # app\ndry_run = False\n'),
        "1.2": P.declared_in_source('app_dir = ""\nport = 5432\nallow_commit = False\ndry_run = False\n'),
        "1.3": P.declared_in_source('docs_url = "http://x"\n'),
    }
    return tasks, declared


def test_shared_parameters_go_only_to_notebooks_that_declare_them() -> None:
    tasks, declared = _setup()
    given = P.from_pairs([("app_dir", "/srv/app"), ("port", "5433")])
    values = P.resolve(tasks, declared, given, known_secrets=[])
    assert values == {"1.1": {"app_dir": "/srv/app"}, "1.2": {"app_dir": "/srv/app", "port": 5433}, "1.3": {}}


def test_per_task_parameters_and_dry_run() -> None:
    tasks, declared = _setup()
    given = P.ParameterSet(shared={"app_dir": "/a"}, tasks={"1.2": {"allow_commit": "yes", "app_dir": "/b"}})
    values = P.resolve(tasks, declared, given, dry_run=True, known_secrets=[])
    assert values["1.1"] == {"app_dir": "/a", "dry_run": True}
    assert values["1.2"] == {"app_dir": "/b", "allow_commit": True, "dry_run": True}
    assert values["1.3"] == {}  # no dry_run declared: nothing injected (the runner decides to skip it)


def test_only_selected_tasks_get_values() -> None:
    tasks, declared = _setup()
    values = P.resolve(tasks, declared, P.from_pairs([("app_dir", "/a")]), selected=["1.2"], known_secrets=[])
    assert list(values) == ["1.2"]


def test_unknown_shared_name_names_the_real_parameters() -> None:
    tasks, declared = _setup()
    with pytest.raises(P.ParameterError) as err:
        P.resolve(tasks, declared, P.from_pairs([("ap_dir", "/x")]), known_secrets=[])
    text = str(err.value)
    assert "unknown parameter 'ap_dir'" in text and "did you mean app_dir?" in text
    assert "app_dir (1.1, 1.2)" in text and "port (1.2)" in text and "docs_url (1.3)" in text


def test_unknown_per_task_name_and_unknown_task() -> None:
    tasks, declared = _setup()
    given = P.ParameterSet(tasks={"1.1": {"port": 1}, "1.7": {"x": 1}})
    with pytest.raises(P.ParameterError) as err:
        P.resolve(tasks, declared, given, known_secrets=[])
    text = str(err.value)
    assert "task 1.1 has no parameter 'port'" in text and "declares: app_dir, dry_run" in text
    assert "no such task" in text and "1.1, 1.2, 1.3" in text


@pytest.mark.parametrize(
    "name", ["github_token", "DIGITALOCEAN_TOKEN", "db_password", "api_key", "app_secret"]
)
def test_secret_looking_names_are_refused(name: str) -> None:
    tasks, declared = _setup()
    with pytest.raises(P.ParameterError, match="looks like a secret") as err:
        P.resolve(tasks, declared, P.from_pairs([(name, "x")]), known_secrets=[])
    assert "helpers.core.secrets.get" in str(err.value)


@pytest.mark.parametrize(
    "value",
    ["postgresql://app:hunter2hunter2@localhost:5432/app", "ghp_" + "a" * 36, "/srv/s3cr3t-value-123/app"],
)
def test_values_holding_secrets_are_refused(value: str) -> None:
    tasks, declared = _setup()
    with pytest.raises(P.ParameterError, match="holds a secret"):
        P.resolve(tasks, declared, P.from_pairs([("app_dir", value)]), known_secrets=["s3cr3t-value-123"])


def test_type_errors_are_explained() -> None:
    tasks, declared = _setup()
    with pytest.raises(P.ParameterError, match="port expects an integer, not 'abc'"):
        P.resolve(tasks, declared, P.from_pairs([("port", "abc")]), known_secrets=[])
    with pytest.raises(P.ParameterError, match="yes/no parameter"):
        P.resolve(tasks, declared, P.ParameterSet(tasks={"1.2": {"allow_commit": "maybe"}}), known_secrets=[])


def test_parameters_file(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("shared:\n  app_dir: /srv/app\ntasks:\n  '1.2':\n    port: 6000\n")
    given = P.load_file(path)
    assert given.shared == {"app_dir": "/srv/app"} and given.tasks == {"1.2": {"port": 6000}}
    merged = given.merged(P.from_pairs([("app_dir", "/other")]))
    assert merged.shared["app_dir"] == "/other" and merged.tasks["1.2"]["port"] == 6000
    assert P.ParameterSet.from_json(merged.to_json()) == merged


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks:\n  1.10:\n    x: 1\n", "must be quoted"),
        ("shard:\n  x: 1\n", "unknown top-level key"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("tasks:\n  '1.1': 5\n", "must map parameter names"),
        ("shared: [\n", "not valid YAML"),
    ],
)
def test_bad_parameters_files(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(P.ParameterError, match=message):
        P.load_file(path)
    with pytest.raises(P.ParameterError, match="does not exist"):
        P.load_file(tmp_path / "missing.yaml")


def test_digest_is_stable_and_sensitive() -> None:
    assert P.digest({"a": 1, "b": "x"}) == P.digest({"b": "x", "a": 1})
    assert P.digest({"a": 1}) != P.digest({"a": 2})
