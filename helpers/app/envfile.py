"""``.env`` files, edited line by line so that every other key, comment, blank line and quote survives.

The parser understands what dotenv (Node and Python) reads: ``KEY=value``, ``export KEY=value``,
single/double/back-quoted values (double-quoted ones may span lines), inline comments after
unquoted values, comments and blank lines. Editing a key rewrites only its value; everything else
stays byte for byte, including CRLF line endings and a missing final newline.

:func:`edit_url` changes one part of a ``postgres://`` / ``redis://`` URL and nothing else (where the
app keeps its services, and as whom: :mod:`helpers.services.appenv`). Task 1.9
(:mod:`helpers.app.envexample`) builds on both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import quote

from helpers.app.appfiles import newline_of
from helpers.services.appenv import URL, VAR

EXAMPLE = ".env.example"
LOCAL = ".env"
DEFAULT_PASSWORD = "postgres"  # the compose file's documented local default

_ASSIGN = re.compile(
    r"^(?P<lead>[ \t]*)(?P<export>export[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)"
    r"(?P<eq>[ \t]*=[ \t]*)(?P<rest>.*)$"
)


@dataclass(frozen=True)
class Entry:
    """One logical line of an env file. ``raw`` is its exact text, newline(s) included."""

    raw: str
    kind: Literal["blank", "comment", "assign", "other"]
    key: str = ""
    value: str = ""
    quote: str = ""
    prefix: str = ""  # lead + export + key + '=' (as written)
    suffix: str = ""  # what follows the value: inline comment, trailing spaces
    newline: str = ""

    @property
    def exported(self) -> bool:
        return "export" in self.prefix.split(self.key)[0]

    def with_value(self, value: str) -> Entry:
        quote_char = self.quote
        if quote_char and quote_char in value:
            quote_char = next(q for q in ('"', "'", "`") if q not in value)
        if not quote_char and re.search(r"[\s#'\"]", value):
            quote_char = '"'
        raw = f"{self.prefix}{quote_char}{value}{quote_char}{self.suffix}{self.newline}"
        return replace(self, raw=raw, value=value, quote=quote_char)


class EnvFileError(ValueError):
    pass


def _lines(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        yield body, line[len(body) :]


def parse(text: str) -> list[Entry]:
    """Every line of ``text`` as an :class:`Entry`; ``"".join(e.raw for e in parse(t)) == t``."""
    entries: list[Entry] = []
    lines = list(_lines(text))
    i = 0
    while i < len(lines):
        body, newline = lines[i]
        i += 1
        stripped = body.strip()
        if not stripped:
            entries.append(Entry(body + newline, "blank", newline=newline))
            continue
        if stripped.startswith("#"):
            entries.append(Entry(body + newline, "comment", newline=newline))
            continue
        m = _ASSIGN.match(body)
        if not m:
            entries.append(Entry(body + newline, "other", newline=newline))
            continue
        prefix = body[: m.start("rest")]
        rest = m.group("rest")
        if rest[:1] in ('"', "'", "`"):
            q = rest[0]
            inner, end, extra = _closing(rest, q)
            raw_lines = body + newline
            while end < 0 and i < len(lines):  # a double-quoted value over several lines
                nbody, nnl = lines[i]
                i += 1
                raw_lines += nbody + nnl
                rest += newline + nbody
                newline = nnl
                inner, end, extra = _closing(rest, q)
            if end < 0:
                entries.append(Entry(raw_lines, "other", newline=newline))
                continue
            entries.append(Entry(raw_lines, "assign", m.group("key"), inner, q, prefix, extra, newline))
            continue
        cm = re.search(r"\s+#", rest)
        value = rest[: cm.start()] if cm else rest.rstrip()
        suffix = rest[len(value) :]
        entries.append(Entry(body + newline, "assign", m.group("key"), value, "", prefix, suffix, newline))
    return entries


def _closing(rest: str, q: str) -> tuple[str, int, str]:
    """(inside the quotes, index of the closing quote or -1, what follows it)."""
    i = 1
    while i < len(rest):
        if rest[i] == "\\" and q == '"':
            i += 2
            continue
        if rest[i] == q:
            return rest[1:i], i, rest[i + 1 :]
        i += 1
    return "", -1, ""


def render(entries: list[Entry]) -> str:
    return "".join(e.raw for e in entries)


def keys(text: str) -> list[str]:
    """The keys in file order (a duplicated key appears twice)."""
    return [e.key for e in parse(text) if e.kind == "assign"]


def values(text: str) -> dict[str, str]:
    """Key → value; for a duplicated key the last one wins, as with dotenv."""
    return {e.key: e.value for e in parse(text) if e.kind == "assign"}


def all_values(text: str, key: str) -> list[str]:
    return [e.value for e in parse(text) if e.kind == "assign" and e.key == key]


def set_key(text: str, key: str, value: str) -> str:
    """Set every occurrence of ``key`` to ``value`` (quotes, ``export``, comments kept); append if absent."""
    entries = parse(text)
    found = False
    for n, e in enumerate(entries):
        if e.kind == "assign" and e.key == key:
            found = True
            if e.value != value:
                entries[n] = e.with_value(value)
    if found:
        return render(entries)
    newline = newline_of(text) if text else "\n"
    if text and not text.endswith(("\n", "\r")):
        text += newline
    return text + Entry("", "assign", key, "", "", f"{key}=", "", newline).with_value(value).raw


# --------------------------------------------------------------------------- URLs inside values


# ``${VAR}``, ``${VAR:-default}`` and ``$VAR``, as dotenv-expand reads them.
def holes(raw: str) -> tuple[str, list[str]]:
    """``raw`` with each ``${VAR}`` replaced by a marker, and the variables in order."""
    found: list[str] = []

    def hole(m: re.Match[str]) -> str:
        found.append(m.group(0))
        return f"\x00{len(found) - 1}\x00"

    return VAR.sub(hole, raw), found


def _fill(template: str, found: list[str]) -> str:
    return re.sub(r"\x00(\d+)\x00", lambda m: found[int(m.group(1))], template)


def edit_url(raw: str, wanted: dict[str, str]) -> str:
    """A ``postgres://`` or ``redis://`` URL with some parts replaced, everything else as written.

    Parts: ``host``, ``port``, ``user``, ``password``, ``database`` (the first path segment: the
    database name, or Redis's db index). A part written as ``${VAR}`` is left alone (the caller sets
    VAR); a missing port or database is added.
    """
    template, found = holes(raw)
    m = URL.match(template)
    if not m:
        return raw
    edits: list[tuple[int, int, int, str]] = []  # (start, order at the same place, end, text)
    for part, value in wanted.items():
        group = "path" if part == "database" else part
        if m.group(group) is not None:
            start, end = m.span(group)
            if part == "database":
                end = start + len(m.group("path").split("/", 1)[0])
            if "\x00" in template[start:end]:
                continue
            edits.append((start, 0, end, quote(value, safe="") if part in ("user", "password") else value))
        elif part == "port":
            edits.append((m.end("host"), 0, m.end("host"), f":{value}"))
        elif part == "database" and value not in ("", "0"):
            at = m.end("port") if m.group("port") is not None else m.end("host")
            edits.append((at, 1, at, f"/{value}"))
    for start, _, end, value in sorted(edits, reverse=True):
        template = template[:start] + value + template[end:]
    return _fill(template, found)
