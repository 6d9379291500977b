"""Notebook parameters: what each notebook declares, and what the runner injects.

* **Declared** parameters are read from each notebook's cell tagged ``parameters``, with Python's
  ``ast`` (papermill's own line parser skips any line holding a second ``=``). A trailing
  ``# comment`` is the parameter's help. A default read from the environment
  (``dry_run = env.dry_run``) has the kind its setting declares (:mod:`helpers.core.settings`).
* **Given** parameters come from ``-p NAME VALUE`` (shared) and a YAML file::

      shared:            # to every notebook that declares the name
        app_dir: /home/me/implementation-2
      tasks:             # per task id (quote ids: YAML reads 1.10 as the number 1.1)
        "1.14":
          allow_commit: true

* Shared names go to every selected notebook that declares them; per-task names must be
  declared by that task's notebook. An unknown name is an error naming the real parameters.
* Secrets are refused: a secret-looking name (``helpers.core.secrets.is_secret_name``), or a value
  that holds a known secret's value or a token-shaped string. Notebooks read secrets with
  ``helpers.core.secrets.get`` from the environment or the git-ignored ``.env``.
* ``--dry-run`` sets ``dry_run = True`` in every notebook that declares ``dry_run``.
"""

from __future__ import annotations

import ast
import difflib
import io
import json
import tokenize
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helpers.core import secrets
from helpers.core.settings import Settings, Var
from helpers.core.tasks import Task

DRY_RUN = "dry_run"
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


class ParameterError(ValueError):
    """Bad parameters: the message says what is wrong and what to do instead."""


@dataclass(frozen=True)
class Declared:
    """A parameter as its notebook declares it."""

    name: str
    default: str
    help: str = ""
    annotation: str = ""

    @property
    def kind(self) -> str:
        """``bool``, ``int``, ``float``, ``str`` or ``any``, from the annotation or the default."""
        if self.annotation in ("bool", "int", "float", "str"):
            return self.annotation
        return _kind_of_expression(self.default)


def _kind_of_expression(source: str) -> str:
    try:
        value = ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    else:
        for kind in (bool, int, float, str):
            if type(value) is kind:
                return kind.__name__
        return "any"
    try:
        node = ast.parse(source, mode="eval").body
    except SyntaxError:
        return "any"
    setting = _setting_kind(node)
    if setting:
        return setting
    if isinstance(node, ast.Compare | ast.BoolOp) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
    ):
        return "bool"
    if isinstance(node, ast.Call):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in ("bool", "int", "float", "str"):
            return name
        if name in ("get", "getenv", "Path", "expanduser", "format", "join"):
            return "str"
    if isinstance(node, ast.JoinedStr):
        return "str"
    return "any"


def _setting_kind(node: ast.expr) -> str:
    """``env.dry_run`` (or ``env.health_path or "/api/health"``): the kind the setting declares."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and node.values:
        node = node.values[0]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "env":
        var = getattr(Settings, node.attr, None)
        if isinstance(var, Var):
            return "str" if var.kind == "path" else var.kind
    return ""


def parameters_cell(nb: Mapping[str, Any]) -> str | None:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            return "".join(source) if isinstance(source, list) else source
    return None


def declared_in_source(source: str) -> dict[str, Declared]:
    """Top-level assignments of a parameters cell, with their trailing comments as help."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(
            f"the parameters cell is not valid Python ({exc.msg}, line {exc.lineno})"
        ) from exc
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    found: dict[str, Declared] = {}
    for node in tree.body:
        targets: list[ast.expr]
        if isinstance(node, ast.Assign):
            targets, value, annotation = node.targets, node.value, ""
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
            annotation = ast.get_source_segment(source, node.annotation) or ""
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                found[target.id] = Declared(
                    name=target.id,
                    default=ast.get_source_segment(source, value) or "",
                    help=comments.get(node.end_lineno or node.lineno, ""),
                    annotation=annotation,
                )
    return found


def declared_parameters(notebook: Path) -> dict[str, Declared]:
    """The parameters a notebook declares (empty when it has no ``parameters`` cell)."""
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    source = parameters_cell(nb)
    return declared_in_source(source) if source is not None else {}


@dataclass
class ParameterSet:
    """Parameters as given: shared ones and per-task ones (values from YAML, or CLI strings)."""

    shared: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def merged(self, other: ParameterSet) -> ParameterSet:
        """``other`` wins on conflicts."""
        tasks = {tid: dict(values) for tid, values in self.tasks.items()}
        for tid, values in other.tasks.items():
            tasks.setdefault(tid, {}).update(values)
        return ParameterSet(shared={**self.shared, **other.shared}, tasks=tasks)

    def to_json(self) -> dict[str, Any]:
        return {"shared": dict(self.shared), "tasks": {k: dict(v) for k, v in self.tasks.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> ParameterSet:
        data = data or {}
        return cls(
            shared=dict(data.get("shared", {})), tasks={k: dict(v) for k, v in data.get("tasks", {}).items()}
        )


def from_pairs(pairs: Iterable[tuple[str, str]] | None) -> ParameterSet:
    """``-p NAME VALUE`` pairs: shared parameters; values stay strings until typed by :func:`resolve`."""
    return ParameterSet(shared={name: value for name, value in pairs or ()})


def load_file(path: Path) -> ParameterSet:
    """A parameters YAML file (``shared:`` and ``tasks:``)."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"parameters file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ParameterError(f"parameters file {path} is not valid YAML: {exc}") from exc
    expected = "expected 'shared:' (for every notebook that declares the name) and 'tasks:' (per task id)"
    if not isinstance(data, dict):
        raise ParameterError(f"parameters file {path}: the top level must be a mapping; {expected}")
    unknown = set(data) - {"shared", "tasks"}
    if unknown:
        raise ParameterError(
            f"parameters file {path}: unknown top-level key(s) {sorted(map(str, unknown))}; {expected}"
        )
    shared = data.get("shared") or {}
    per_task = data.get("tasks") or {}
    if not isinstance(shared, dict) or not isinstance(per_task, dict):
        raise ParameterError(f"parameters file {path}: 'shared' and 'tasks' must be mappings; {expected}")
    tasks: dict[str, dict[str, Any]] = {}
    for key, values in per_task.items():
        if isinstance(key, float):
            raise ParameterError(
                f"parameters file {path}: task id {key!r} must be quoted (write '{key}': ...); "
                "YAML reads an unquoted 1.10 as the number 1.1"
            )
        if not isinstance(values, dict):
            raise ParameterError(f"parameters file {path}: tasks.{key} must map parameter names to values")
        tasks[str(key)] = {str(k): v for k, v in values.items()}
    return ParameterSet(shared={str(k): v for k, v in shared.items()}, tasks=tasks)


def _coerce(value: Any, decl: Declared, where: str) -> Any:
    kind = decl.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ParameterError(f"{where}: {decl.name} is a yes/no parameter; give true or false, not {value!r}")
    if kind in ("int", "float"):
        if isinstance(value, bool):
            raise ParameterError(f"{where}: {decl.name} expects a number, not {value!r}")
        try:
            return int(value) if kind == "int" else float(value)
        except (TypeError, ValueError):
            raise ParameterError(
                f"{where}: {decl.name} expects {'an integer' if kind == 'int' else 'a number'}, "
                f"not {value!r} (default: {decl.default})"
            ) from None
    if kind == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return str(value)
        raise ParameterError(f"{where}: {decl.name} expects text, not {type(value).__name__} {value!r}")
    return value  # 'any': YAML values keep their type, CLI values stay strings


def _secret_problem(name: str, value: Any, known: list[str]) -> str | None:
    if secrets.is_secret_name(name):
        return (
            f"parameter {name!r} looks like a secret, and the runner never passes secrets as notebook "
            "parameters (they would be written into the executed notebook). Export it in your shell or "
            f"put it in {secrets.secrets_file()} (git-ignored); notebooks read it with "
            "helpers.core.secrets.get(...). The names are documented in helpers/core/secrets.py (SECRETS)."
        )
    texts = (
        [str(v) for v in (value.values() if isinstance(value, dict) else value)]
        if isinstance(value, list | tuple | dict)
        else [str(value)]
    )
    for text in texts:
        if any(v in text for v in known) or secrets.scrub(text, values=[]) != text:
            return (
                f"the value of parameter {name!r} holds a secret (a configured secret's value or a "
                "token-shaped string such as a password inside a URL). Pass secrets through the environment "
                f"or {secrets.secrets_file()}, never as parameters."
            )
    return None


def _listing(declared: Mapping[str, Mapping[str, Declared]]) -> str:
    users: dict[str, list[str]] = {}
    for task_id, names in declared.items():
        for name in names:
            users.setdefault(name, []).append(task_id)
    if not users:
        return "none of these notebooks declares a parameter"
    return "; ".join(f"{name} ({', '.join(ids)})" for name, ids in sorted(users.items()))


def resolve(
    tasks: list[Task],
    declared: Mapping[str, Mapping[str, Declared]],
    given: ParameterSet,
    dry_run: bool = False,
    selected: Iterable[str] | None = None,
    known_secrets: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The parameters to inject into each selected task's notebook.

    ``declared`` maps task id to the parameters its notebook declares (for every notebook of
    the phase that exists); names are checked against the whole phase, injected into the
    selected tasks only. Raises :class:`ParameterError` with the real parameters named.
    """
    ids = [t.id for t in tasks]
    chosen = list(selected) if selected is not None else ids
    known = secrets.known_values() if known_secrets is None else known_secrets
    problems: list[str] = []
    every_name = {n for names in declared.values() for n in names}
    for name, value in given.shared.items():
        problem = _secret_problem(name, value, known)
        if problem:
            problems.append(problem)
        elif name not in every_name:
            near = difflib.get_close_matches(name, sorted(every_name), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            problems.append(f"unknown parameter {name!r}{hint}. The notebooks declare: {_listing(declared)}")
    for task_id, values in given.tasks.items():
        if task_id not in ids:
            problems.append(
                f"parameters for task {task_id}: this phase has no such task (its tasks: {', '.join(ids)})"
            )
            continue
        own = declared.get(task_id, {})
        for name, value in values.items():
            problem = _secret_problem(name, value, known)
            if problem:
                problems.append(problem)
            elif name not in own:
                near = difflib.get_close_matches(name, sorted(own), n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                real = ", ".join(sorted(own)) or "no parameters at all"
                problems.append(
                    f"task {task_id} has no parameter {name!r}{hint}; its notebook declares: {real}"
                )
    if problems:
        raise ParameterError("\n".join(problems))

    result: dict[str, dict[str, Any]] = {}
    for task_id in chosen:
        own = declared.get(task_id, {})
        values: dict[str, Any] = {}
        for name, value in given.shared.items():
            if name in own:
                values[name] = _coerce(value, own[name], f"task {task_id}")
        for name, value in given.tasks.get(task_id, {}).items():
            values[name] = _coerce(value, own[name], f"task {task_id}")
        if dry_run and DRY_RUN in own:
            values[DRY_RUN] = True
        result[task_id] = values
    return result


def digest(values: Mapping[str, Any]) -> str:
    """A stable fingerprint of a task's injected parameters (resume compares them)."""
    import hashlib

    blob = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
