"""Edit ``package.json`` scripts as text, so nothing else in the file moves (task 1.8).

Re-serialising the whole file would re-indent it and could reflow arrays a person formatted by
hand. Instead a small scanner finds where the top-level object's members and the ``scripts``
members start and end, and new scripts are inserted (or one value replaced, or a member removed)
at those positions, with the file's own indentation (2 or 4 spaces, tabs, or none), line endings
and final newline. The result is parsed again and compared with the intended data.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from helpers.app import vmtext
from helpers.app.appfiles import FileChange, Tree, newline_of
from helpers.core.steps import StepResult

NAME = "package.json"

# The docker scripts task 1.8 adds, in this order.
DOCKER_SCRIPTS: dict[str, str] = {
    "docker:up": "docker compose up -d --wait",
    "docker:down": "docker compose down",
    "docker:logs": "docker compose logs -f",
    "docker:ps": "docker compose ps",
    "docker:reset": "docker compose down -v && docker compose up -d --wait",
}


class PackageJsonError(ValueError):
    """package.json cannot be read or edited; the message has the line, the column and the next step."""


def parse(text: str, path: str = NAME) -> dict[str, Any]:
    """The parsed object, or :class:`PackageJsonError` saying where the JSON breaks and what to do."""
    try:
        data = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise PackageJsonError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            f"Next step: fix that spot (a missing comma or quote, a trailing comma, a comment), check it "
            f"with `node -e \"require('./{os.path.basename(path)}')\"`, then run this task again"
        ) from None
    if not isinstance(data, dict):
        raise PackageJsonError(f"{path} must hold a JSON object ({{...}}), not {type(data).__name__}")
    scripts = data.get("scripts")
    if scripts is not None and not (
        isinstance(scripts, dict) and all(isinstance(v, str) for v in scripts.values())
    ):
        raise PackageJsonError(
            f'{path}: "scripts" must be an object of strings; fix it by hand, then run again'
        )
    return data


# --------------------------------------------------------------------------- positions


@dataclass(frozen=True)
class Member:
    key: str
    key_start: int
    value_start: int
    value_end: int


@dataclass(frozen=True)
class Obj:
    start: int  # index of '{'
    end: int  # index just after '}'
    members: tuple[Member, ...]


_WS = " \t\n\r"
_decoder = json.JSONDecoder()


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def scan_object(text: str, start: int) -> Obj:
    """The members of the JSON object whose ``{`` is at ``start`` (the text must be valid JSON)."""
    if text[start] != "{":
        raise PackageJsonError("internal: expected an object")
    members = []
    i = _skip(text, start + 1)
    if text[i] == "}":
        return Obj(start, i + 1, ())
    while True:
        key_start = i
        key, i = _decoder.raw_decode(text, i)
        i = _skip(text, i)
        i = _skip(text, i + 1)  # ':'
        value_start = i
        _, i = _decoder.raw_decode(text, i)
        members.append(Member(key, key_start, value_start, i))
        i = _skip(text, i)
        if text[i] == "}":
            return Obj(start, i + 1, tuple(members))
        i = _skip(text, i + 1)  # ','


def _top(text: str) -> Obj:
    return scan_object(text, _skip(text, 1 if text.startswith("\ufeff") else 0))


def _line_indent(text: str, pos: int) -> str:
    line_start = text.rfind("\n", 0, pos) + 1
    m = re.match(r"[ \t]*", text[line_start:pos])
    return m.group(0) if m else ""


def _is_multiline(text: str, obj: Obj) -> bool:
    return "\n" in text[obj.start : obj.end]


def indent_unit(text: str) -> str:
    """The file's indentation step: the top-level members' indent ("  ", "    ", "\\t"; "" if compact)."""
    top = _top(text)
    if not top.members or not _is_multiline(text, top):
        return ""
    return _line_indent(text, top.members[0].key_start)


def _separator(text: str, obj: Obj) -> str:
    """Between ``"key"`` and its value, as the file writes it: ': ' (npm) or ':' (compact)."""
    if obj.members:
        m = obj.members[0]
        sep = text[m.key_start : m.value_start].rsplit('"', 1)[-1]
        if "\n" not in sep:
            return sep
    return ": "


def _dump(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _insert_members(text: str, obj: Obj, items: list[tuple[str, str]], parent_indent: str, unit: str) -> str:
    """Add ``items`` (key, JSON text of the value) at the end of ``obj``, formatted like its members.

    An empty object is written out in full, one member a line when the file is indented.
    """
    sep = _separator(text, obj)
    if obj.members:
        last = obj.members[-1]
        if _is_multiline(text, obj):
            nl = newline_of(text)
            indent = _line_indent(text, obj.members[0].key_start)
            added = "".join(f",{nl}{indent}{_dump(k)}{sep}{v}" for k, v in items)
        else:
            gap = ", " if ", " in text[obj.start : obj.end] else ","
            added = "".join(f"{gap}{_dump(k)}{sep}{v}" for k, v in items)
        return text[: last.value_end] + added + text[last.value_end :]
    return text[: obj.start] + _object_text(text, items, parent_indent, unit, sep) + text[obj.end :]


def _object_text(text: str, items: list[tuple[str, str]], parent_indent: str, unit: str, sep: str) -> str:
    if not unit:
        return "{" + ",".join(f"{_dump(k)}{sep}{v}" for k, v in items) + "}"
    nl = newline_of(text)
    inner = f",{nl}".join(f"{parent_indent}{unit}{_dump(k)}{sep}{v}" for k, v in items)
    return "{" + nl + inner + nl + parent_indent + "}"


# --------------------------------------------------------------------------- edits


def add_scripts(
    text: str, wanted: dict[str, str], overwrite: bool = False
) -> tuple[str, dict[str, list[str]]]:
    """Add the missing ``wanted`` scripts (and replace different ones only with ``overwrite``).

    Returns the new text and a report: ``added``, ``same``, ``conflicts`` (kept), ``replaced``.
    """
    data = parse(text)
    scripts = data.get("scripts") or {}
    report: dict[str, list[str]] = {"added": [], "same": [], "conflicts": [], "replaced": []}
    missing = []
    for name, command in wanted.items():
        if name not in scripts:
            missing.append((name, command))
            report["added"].append(name)
        elif scripts[name] == command:
            report["same"].append(name)
        elif overwrite:
            report["replaced"].append(name)
        else:
            report["conflicts"].append(name)
    new = text
    for name in report["replaced"]:
        obj = _scripts_obj(new)
        member = next(m for m in obj.members if m.key == name)
        new = new[: member.value_start] + _dump(wanted[name]) + new[member.value_end :]
    if missing:
        unit = indent_unit(new)
        top = _top(new)
        entry = next((m for m in top.members if m.key == "scripts"), None)
        raw = [(k, _dump(v)) for k, v in missing]
        if entry is None:
            scripts_text = _object_text(new, raw, unit, unit, _separator(new, top))
            new = _insert_members(new, top, [("scripts", scripts_text)], "", unit)
        else:
            obj = scan_object(new, entry.value_start)
            new = _insert_members(new, obj, raw, _line_indent(new, entry.key_start), unit)
    expected = dict(data)
    expected["scripts"] = {
        **scripts,
        **{k: v for k, v in wanted.items() if k in report["added"] + report["replaced"]},
    }
    _assert_same(new, expected)
    return new, report


def remove_scripts(text: str, drop: Callable[[str, str], bool]) -> tuple[str, list[str]]:
    """Remove the scripts for which ``drop(name, command)`` is true; returns the text and their names."""
    data = parse(text)
    scripts = data.get("scripts") or {}
    names = [n for n, cmd in scripts.items() if drop(n, cmd)]
    new = text
    for name in names:
        obj = _scripts_obj(new)
        index = next(i for i, m in enumerate(obj.members) if m.key == name)
        member = obj.members[index]
        if len(obj.members) == 1:
            new = new[: obj.start] + "{}" + new[obj.end :]
        elif index > 0:
            new = new[: obj.members[index - 1].value_end] + new[member.value_end :]
        else:
            new = new[: member.key_start] + new[obj.members[1].key_start :]
    expected = dict(data)
    if names:
        expected["scripts"] = {k: v for k, v in scripts.items() if k not in names}
    _assert_same(new, expected)
    return new, names


def _scripts_obj(text: str) -> Obj:
    entry = next(m for m in _top(text).members if m.key == "scripts")
    return scan_object(text, entry.value_start)


def _assert_same(text: str, expected: dict[str, Any]) -> None:
    """The edited text parses to exactly the intended data, key order included."""
    got = parse(text)
    same = got == expected and list(got) == list(expected)
    same = same and list(got.get("scripts") or {}) == list(expected.get("scripts") or {})
    if not same:
        raise PackageJsonError(
            "internal: the edit of package.json did not give the intended data; nothing written"
        )


def trailing_newline(text: str) -> bool:
    return text.endswith("\n")


# --------------------------------------------------------------------------- task 1.8


def plan_docker_scripts(
    app: Tree | str | os.PathLike[str], wanted: dict[str, str] | None = None, overwrite: bool = False
) -> tuple[list[FileChange], list[StepResult]]:
    """The change to ``package.json`` and a step per script that is already there or conflicts."""
    tree = Tree.of(app)
    wanted = DOCKER_SCRIPTS if wanted is None else wanted
    text = tree.read(NAME)
    if text is None:
        raise PackageJsonError(f"{tree.path(NAME)} is missing: point app_dir at the app repository's root")
    data = parse(text, str(tree.path(NAME)))
    new, report = add_scripts(text, wanted, overwrite)
    results = []
    for name in report["conflicts"]:
        results.append(
            StepResult(
                f"script {name}",
                "skipped",
                f"exists with a different command ({data['scripts'][name]!r}); kept. "
                f"Set overwrite_scripts=True to replace it with {wanted[name]!r}",
            )
        )
    why = []
    if report["added"]:
        why.append("added " + ", ".join(report["added"]))
    if report["replaced"]:
        why.append("replaced " + ", ".join(report["replaced"]))
    if not why:
        why.append(f"the {len(report['same'])} docker scripts are already there")
    return [FileChange(NAME, text, new, "; ".join(why))], results


def check_docker_scripts(
    check,
    app: Tree | str | os.PathLike[str],
    wanted: dict[str, str] | None = None,
    removed: Iterable[str] = (),
) -> None:
    """Task 1.8's verification: valid JSON, the docker scripts, and nothing else disturbed.

    ``removed``: the VM scripts phase 1 removes (task 1.12), whatever they run.
    """

    tree = Tree.of(app)
    wanted = DOCKER_SCRIPTS if wanted is None else wanted
    text = tree.read(NAME)
    try:
        data = parse(text or "", NAME)
    except PackageJsonError as exc:
        check(
            "package.json is valid JSON",
            False,
            str(exc),
            hint="fix the file at the line shown, then run again",
        )
        return
    check("package.json is valid JSON", True, f"{len(data)} top-level keys")
    scripts = data.get("scripts") or {}
    for name, command in wanted.items():
        check(
            f"script {name}: {command}",
            scripts.get(name) == command,
            scripts.get(name, "missing"),
            hint="run task 1.8 (overwrite_scripts=True replaces a different command)",
        )
    committed = tree.committed(NAME)
    if committed is None:
        return
    try:
        before = parse(committed)
    except PackageJsonError:
        return
    check(
        "top-level keys kept, in order",
        [k for k in data if k in before] == list(before),
        ", ".join(k for k in before if k not in data) or f"{len(before)} keys",
        hint="restore package.json from git and run task 1.8 again",
    )
    gone = set(removed)
    old_scripts = {
        k: v
        for k, v in (before.get("scripts") or {}).items()
        if k not in wanted and k not in gone and not vmtext.has_reference(v)
    }
    changed = [k for k, v in old_scripts.items() if scripts.get(k) != v]
    check(
        "the app's other scripts unchanged",
        not changed,
        ", ".join(changed) or f"{len(old_scripts)} scripts",
        hint="restore them from `git show HEAD:package.json`",
    )
    same_format = indent_unit(text) == indent_unit(committed) and trailing_newline(text) == trailing_newline(
        committed
    )
    check(
        "indentation and final newline as before",
        same_format,
        f"indent {indent_unit(text)!r}, final newline {trailing_newline(text)}",
        hint="re-format package.json as it was (npm writes 2 spaces and a final newline)",
    )
