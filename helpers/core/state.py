"""Non-secret facts that a task hands to later tasks (a droplet's id and IP, a project's uuid...).

Each phase keeps one JSON file, ``.work/state/<name>.json`` under the project root
(git-ignored; ``RUNBOOK_STATE_DIR`` points elsewhere, e.g. in tests). Values are
plain JSON. Secrets never go here: :func:`update` refuses secret-looking keys
and any value that :func:`helpers.core.secrets.scrub` would redact; secrets belong
in :mod:`helpers.core.secrets`.

>>> update("phase2", droplet={"id": 42, "ipv4": "203.0.113.7"})   # doctest: +SKIP
>>> load("phase2")["droplet"]["ipv4"]                              # doctest: +SKIP
'203.0.113.7'
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpers.core import secrets
from helpers.core.settings import env


class SecretInState(ValueError):
    """Someone tried to store a secret in a (plain, non-secret) state file."""


def state_dir() -> Path:
    return env.state_dir


def path(name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"state name {name!r} must be a plain file stem such as 'phase2'")
    return state_dir() / f"{name}.json"


def load(name: str) -> dict[str, Any]:
    """The whole state of ``name`` (``{}`` when nothing was recorded yet)."""
    p = path(name)
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not valid JSON ({exc}); fix or delete it, then re-run the task") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p} must hold a JSON object; fix or delete it, then re-run the task")
    return data


def get(name: str, key: str, default: Any = None) -> Any:
    return load(name).get(key, default)


def require(name: str, key: str, task: str) -> Any:
    """A recorded value, or a clear error telling which task records it."""
    value = load(name).get(key)
    if value is None:
        raise LookupError(f"{key!r} is not recorded in {path(name)}; run task {task} first (it records it)")
    return value


def _check_not_secret(key: str, value: Any) -> None:
    if secrets.is_secret_name(key):
        raise SecretInState(
            f"refusing to write {key!r} to a state file: it names a secret; use helpers.core.secrets.put"
        )
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_not_secret(str(k), v)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_not_secret(key, v)
    elif isinstance(value, str) and secrets.scrub(value) != value:
        raise SecretInState(f"refusing to write {key!r} to a state file: its value looks like a secret")


def update(name: str, **sections: Any) -> dict[str, Any]:
    """Set top-level keys of ``name`` (each replaced whole) and write the file atomically."""
    for key, value in sections.items():
        _check_not_secret(key, value)
    data = load(name)
    data.update(json.loads(json.dumps(sections)))  # only plain JSON goes in
    p = path(name)
    p.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=p.parent, prefix=f".{p.name}.", delete=False, encoding="utf-8"
    ) as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(f.name, p)
    return data


def forget(name: str, *keys: str) -> dict[str, Any]:
    """Remove top-level keys (e.g. after the resource was deleted)."""
    data = load(name)
    for key in keys:
        data.pop(key, None)
    p = path(name)
    if p.exists() or data:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return data
