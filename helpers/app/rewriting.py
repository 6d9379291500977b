"""The rules that rewrite one file of the app repository, so that what it says about the local setup is true.

:func:`rewrite_file` takes one file and a :class:`Context` (what the rules know about the app: its
words for the VM, its VM scripts and pages, the docker facts of the texts it gets) and returns the
file rewritten by the sure rules, the places no rule is sure about (:class:`~helpers.app.vmtext.Unsure`,
left as they are) and those changed because the person accepted their proposal. Markdown is read
as units (headings, paragraphs, list items, table rows, code lines: :func:`plan_markdown`), env files
by :func:`helpers.app.envexample.rewrite_env`, code by its comments and command lines
(:func:`plan_code`), ``package.json`` by its scripts. :mod:`helpers.app.references` runs these over a
task's files; its docstring lists the rules.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from markdown_it import MarkdownIt

from helpers.app import appdocs, envexample, envfile, packagejson, pmcommand
from helpers.app.appfiles import newline_of
from helpers.app.vmtext import (
    DEFAULT_RULES,
    Rules,
    Unsure,
    has_multipass_command,
    has_reference,
    map_embedded_commands,
    proposed_rewrite,
    repoint_paths,
    rewrite_addresses,
    rewrite_command_line,
    sentences,
    speaks_of_vm,
    split_newline,
    sure_rewrite,
)

MARKDOWN = (".md", ".mdx", ".markdown")


def _under(rel: str, folder: str) -> bool:
    return rel == folder or rel.startswith(folder.rstrip("/") + "/")


def _comment_prefix(rel: str) -> tuple[str, ...]:
    path = PurePosixPath(rel)
    suffix = path.suffix.lower()
    if suffix in (
        ".ts",
        ".tsx",
        ".js",
        ".jsx",
        ".mjs",
        ".cjs",
        ".go",
        ".rs",
        ".java",
        ".c",
        ".h",
        ".cpp",
        ".cs",
        ".kt",
        ".swift",
        ".css",
        ".scss",
        ".jsonc",
    ):
        return ("//", "/*", "*")
    if suffix in (".sql", ".lua"):
        return ("--",)
    if suffix in (".ini",):
        return (";", "#")
    return ("#",)


def is_shell(rel: str, text: str) -> bool:
    path = PurePosixPath(rel)
    if path.suffix.lower() in (".sh", ".bash", ".zsh", ".fish", ".ps1", ".cmd", ".bat"):
        return True
    if path.name in ("Makefile", "Justfile", "justfile", "Procfile") or path.suffix.lower() == ".mk":
        return True
    return text.startswith("#!") and bool(re.match(r"#!.*\b(?:ba|z|da)?sh\b", text))


def is_env_file(rel: str) -> bool:
    name = PurePosixPath(rel).name
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


# --------------------------------------------------------------------------- decision records

_RECORD_DIRS = frozenset({"adr", "adrs", "decisions", "decision-records", "architecture-decisions"})
SUPERSEDED = "Superseded: local PostgreSQL and Redis now run in Docker (`docker-compose.yml`)."


def is_decision_record(rel: str, text: str | None) -> bool:
    """An architecture decision record: under an ``adr/`` (``decisions/``...) folder, or a page with
    ``Status`` and ``Decision``/``Context`` sections."""
    if PurePosixPath(rel).suffix.lower() not in MARKDOWN:
        return False
    if _RECORD_DIRS & {p.lower() for p in PurePosixPath(rel).parts[:-1]}:
        return True
    titles = {h.title.strip().lower() for h in appdocs.headings((text or "").splitlines())}
    return "status" in titles and bool(titles & {"decision", "context"})


def is_superseded(text: str | None) -> bool:
    """The record's status says it no longer holds (superseded, deprecated, replaced)."""
    lines = (text or "").splitlines()
    heads = appdocs.headings(lines)
    status = next((h for h in heads if h.title.strip().lower() == "status"), None)
    if status is not None:
        body = " ".join(lines[status.index + 1 : appdocs.section_end(lines, heads, status)])
    else:
        body = " ".join(line for line in lines if re.match(r"^\s*\**status\**\s*:", line, re.I))
    return bool(re.search(r"superseded|deprecated|replaced|obsolete", body, re.I))


def is_history(rel: str, text: str | None) -> bool:
    """A decision record marked superseded: it tells what was decided then, not what is true now."""
    return is_decision_record(rel, text) and is_superseded(text)


def _status_edit(lines: list[str]) -> tuple[int, int, tuple[str, ...]]:
    """The edit that marks a record superseded: its status line, or a status after its title."""
    heads = appdocs.headings(lines)
    status = next((h for h in heads if h.title.strip().lower() == "status"), None)
    if status is not None:
        body = next((i for i in range(status.index + 1, len(lines)) if lines[i].strip()), None)
        end = appdocs.section_end(lines, heads, status)
        if body is not None and body < end:
            return body, body + 1, (SUPERSEDED,)
        return status.index + 1, status.index + 1, ("", SUPERSEDED)
    title = heads[0].index + 1 if heads else 0
    return title, title, ("", f"Status: {SUPERSEDED}")


# --------------------------------------------------------------------------- links

_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_REF_DEF = re.compile(r"^\s{0,3}\[(?P<label>[^\]]+)\]:\s*(?P<target>\S+).*$")


def resolve_link(source: str, target: str) -> str | None:
    """The repository path a relative link in ``source`` points to; None for URLs, anchors, absolute
    paths and paths outside the repository."""
    target = target.strip("<>").split("#", 1)[0].split("?", 1)[0]
    if not target or target.startswith("/") or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
        return None
    path = os.path.normpath(os.path.join(str(PurePosixPath(source).parent), target)).replace(os.sep, "/")
    return None if path.startswith("..") else path.rstrip("/")


def _title_of(target: str) -> str:
    return "the Docker troubleshooting guide" if target.startswith(appdocs.GUIDE) else appdocs.SECTION_TITLE


def repoint_links(rel: str, line: str, gone: Mapping[str, str], rules: Rules = DEFAULT_RULES) -> str:
    """Links (and reference definitions) to removed pages point at the pages that replaced them; a
    link named by the old page's path or after the VM takes the new page's title."""
    base = str(PurePosixPath(rel).parent)

    def new_target(old: str) -> str | None:
        path = resolve_link(rel, old)
        if path is None or path not in gone:
            return None
        target = gone[path]
        if target.split("#", 1)[0] == rel:
            return "#" + target.split("#", 1)[1] if "#" in target else rel
        return appdocs.relative_link(base, target)

    def one(m: re.Match[str]) -> str:
        target = new_target(m.group("target"))
        if target is None:
            return m.group(0)
        text = m.group("text")
        if re.search(r"[/\\]|\.mdx?$", text) or speaks_of_vm(text, rules) or not text.strip():
            text = _title_of(gone[resolve_link(rel, m.group("target")) or ""])
        return f"[{text}]({target})"

    d = _REF_DEF.match(line)
    if d:
        target = new_target(d.group("target"))
        return line if target is None else line.replace(d.group("target"), target, 1)
    return _LINK.sub(one, line)


def links_to(rel: str, text: str, targets: set[str] | Mapping[str, str]) -> list[str]:
    """The links in ``text`` (a Markdown file at ``rel``) that point into ``targets``."""
    found = [m.group(0) for m in _LINK.finditer(text) if resolve_link(rel, m.group("target")) in targets]
    found += [
        m.group(0).strip()
        for line in text.splitlines()
        if (m := _REF_DEF.match(line)) and resolve_link(rel, m.group("target")) in targets
    ]
    return found


@dataclass(frozen=True)
class Context:
    """What the rewrite rules know about the app: its VM words, scripts and pages, its docker facts."""

    rules: Rules = DEFAULT_RULES
    facts: appdocs.Facts = field(default_factory=appdocs.Facts.defaults)
    vm_scripts: frozenset[str] = frozenset()  # the VM scripts' names (root) and labels (package:name)
    gone: Mapping[str, str] = field(default_factory=dict)  # removed VM page -> the page replacing it
    vm_files: frozenset[str] = frozenset()  # files only the VM scripts ran
    scripts: frozenset[str] = frozenset()  # every other script (names and labels)
    packages: frozenset[str] = frozenset()  # the workspace packages' folders
    section_pattern: str | None = None  # the README/CLAUDE.md heading to replace (tasks 1.10, 1.11)


# --------------------------------------------------------------------------- Markdown

_MD = MarkdownIt("commonmark").enable("table")
_FENCE = re.compile(r"^\s{0,3}(?P<fence>`{3,}|~{3,})")
_SHELL_INFO = ("", "sh", "bash", "shell", "zsh", "console", "text", "txt", "shell-session", "powershell")
DOCKER_PLACE = "Docker (`docker-compose.yml`)"


@dataclass
class _Unit:
    kind: str  # heading, para, item, row, header, code, fence
    start: int  # 0-based, first line
    end: int  # the line after
    level: int = 0
    item: tuple[int, int] | None = None  # an item's whole list item
    info: str = ""  # a code line's fence language


def _units(text: str) -> list[_Unit]:
    """Headings, paragraphs, list items, table rows and code lines, with their lines."""
    lines = text.splitlines()
    units: list[_Unit] = []
    items: list[tuple[int, int]] = []
    thead = False
    for tok in _MD.parse(text):
        if tok.type == "list_item_open" and tok.map:
            items.append((tok.map[0], tok.map[1]))
        elif tok.type == "list_item_close" and items:
            items.pop()
        elif tok.type in ("thead_open", "thead_close"):
            thead = tok.type == "thead_open"
        elif not tok.map:
            continue
        elif tok.type == "heading_open":
            units.append(_Unit("heading", tok.map[0], tok.map[1], level=int(tok.tag[1:])))
        elif tok.type == "paragraph_open":
            if items:
                units.append(_Unit("item", tok.map[0], tok.map[1], item=items[-1]))
            else:
                units.append(_Unit("para", tok.map[0], tok.map[1]))
        elif tok.type == "tr_open":
            units.append(_Unit("header" if thead else "row", tok.map[0], tok.map[0] + 1))
        elif tok.type in ("fence", "code_block"):
            start, end = tok.map
            fenced = tok.type == "fence"
            closed = fenced and end - 1 > start and end - 1 < len(lines) and _FENCE.match(lines[end - 1])
            units.append(_Unit("fence", start, end, info=tok.info.strip().lower()))
            for n in range(start + (1 if fenced else 0), end - (1 if closed else 0)):
                units.append(_Unit("code", n, n + 1, info=tok.info.strip().lower().split(" ")[0]))
    return units


def _spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


_SCRIPT_NAME = re.compile(r"^[a-z][\w.-]*(?::[\w.*-]+)*$")


def _script_refs(text: str, ctx: Context, package: str = "") -> tuple[list[str], list[str]]:
    """The scripts a row, item or code line names: (VM scripts, the app's other scripts and commands)."""
    vm, real = [], []
    for span in _spans(text) or [text]:
        calls = [
            call
            for tokens in pmcommand.simple_commands(span)
            if (call := pmcommand.parse(pmcommand.strip_wrappers([t for t in tokens if t != "$"])))
            is not None
        ]
        for call in calls:
            if call.script is None:  # a verb; `pnpm up` in docs written for a VM script `up` meant it
                (vm if call.verb in ctx.vm_scripts else real).append(call.verb or call.manager)
                continue
            names = {call.script, f"{package}:{call.script}" if package else call.script}
            (vm if names & ctx.vm_scripts else real).append(call.script)
        if not calls and _SCRIPT_NAME.match(span.strip()) and span in _spans(text):
            if span in ctx.vm_scripts:
                vm.append(span)
            elif span in ctx.scripts:
                real.append(span)
    return vm, real


def _strip_parens(text: str) -> str:
    return re.sub(r"\s*\([^()]*\)", "", text)


def _vm_only(text: str, ctx: Context, section: str) -> bool:
    """Every sentence speaks of the VM in its main clause (asides in parentheses do not count)."""
    body = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", text.replace("\n", " "))
    parts = sentences(body)
    return bool(parts) and all(speaks_of_vm(_strip_parens(s), ctx.rules, section) for s in parts)


def _row_cells(line: str) -> tuple[str, list[str], str]:
    m = re.match(r"^(\s*\|?)(.*?)(\|?\s*)$", line)
    lead, body, tail = (m.group(1), m.group(2), m.group(3)) if m else ("", line, "")
    return lead, body.split("|"), tail


def _propose(kind: str, cur: list[str], ctx: Context, section: str) -> list[str]:
    """The proposal for a unit no sure rule fixes: the lines to put instead ([] removes it)."""
    rules = ctx.rules

    def clean(text: str) -> bool:
        return not speaks_of_vm(text, rules, section)

    if kind in ("row", "header"):
        lead, cells, tail = _row_cells(cur[0])
        new = []
        for cell in cells:
            if clean(cell):
                new.append(cell)
                continue
            p = proposed_rewrite(cell, rules)
            if not clean(p):
                clauses = [c.strip() for c in cell.split(",")]
                swapped = [DOCKER_PLACE if not clean(c) else c for c in clauses]
                p = " " + ", ".join(dict.fromkeys(swapped)) + " "
            new.append(p)
        return [lead + "|".join(new) + tail]
    per = [proposed_rewrite(line, rules) for line in cur]
    if clean("\n".join(per)) and any(x.strip() for x in per):
        return per
    if kind == "heading":
        return []
    first = re.match(r"^(\s*(?:[-*+]|\d+[.)])?\s*)", cur[0])
    prefix = first.group(1) if first else ""
    body = " ".join(line.strip() for line in [cur[0][len(prefix) :], *cur[1:]])
    kept = [p for s in sentences(body) if clean(p := proposed_rewrite(s, rules))]
    if not kept:
        return []
    width = max(40, max(len(line) for line in cur))
    indent = " " * len(prefix) if prefix.strip() else prefix
    return textwrap.wrap(" ".join(kept), width, initial_indent=prefix, subsequent_indent=indent) or []


def plan_markdown(
    rel: str,
    text: str,
    ctx: Context,
    accept: Sequence[str] = (),
    sections: bool = False,
    links_only: bool = False,
) -> tuple[str, list[Unsure], list[Unsure]]:
    """A Markdown file rewritten by the sure rules; the units no rule is sure about, listed.

    ``sections``: README.md / CLAUDE.md get their docker section (tasks 1.10, 1.11, 1.12);
    ``links_only``: only links to removed pages are repointed (pages outside the task's scope).
    Returns the text, the units still unsure and those changed because ``accept`` names them.
    """
    rules = ctx.rules
    if is_history(rel, text):
        return text, [], []
    record = is_decision_record(rel, text)
    if sections and rel in appdocs.TARGETS and not links_only:
        text = appdocs.render(text, appdocs.TARGETS[rel], ctx.section_pattern, ctx.facts, rules)
    nl = newline_of(text) if text else "\n"
    raw = text.splitlines(keepends=True)
    lines = [split_newline(x)[0] for x in raw]
    out: list[list[str]] = [[x] for x in lines]
    touched: set[int] = set()
    unsure: list[Unsure] = []
    accepted: list[Unsure] = []
    protected: list[tuple[int, int]] = []
    marked = appdocs.find_markers(raw)
    if marked:
        protected.append((marked[0], marked[1] + 1))
    heads = appdocs.headings(raw)
    folder = str(PurePosixPath(rel).parent)
    package = folder if folder in ctx.packages else ""  # a package's README runs its commands there

    def inside(n: int) -> bool:
        return any(a <= n < b for a, b in protected)

    def put(start: int, end: int, new: Sequence[str]) -> None:
        out[start] = list(new)
        for n in range(start + 1, end):
            out[n] = []
        touched.update(range(start, end))

    def section_of(n: int) -> str:
        return next((h.title for h in reversed(heads) if h.index < n), "")

    def listed(start: int, end: int, new: Sequence[str], why: str, proposal: str | None = None) -> None:
        item = Unsure(
            rel,
            start + 1,
            "\n".join(lines[start:end]),
            proposal if proposal is not None else ("\n".join(new) if new else "(remove these lines)"),
            why,
            (start, end, tuple(new)),
        )
        if item.accepted_by(accept):
            accepted.append(item)
            if record:
                s, e, status = _status_edit(lines)
                if s < len(out) or not out:
                    if e > s:
                        put(s, e, status)
                    else:
                        out[s - 1 if s else 0] = out[s - 1 if s else 0] + list(status)
            else:
                put(start, end, new)
        else:
            unsure.append(item)

    # sections about the VM (not in decision records, not the page's title)
    if not links_only and not record:
        for h in heads:
            if h.level < 2 or inside(h.index) or not speaks_of_vm(h.title, rules):
                continue
            end = appdocs.section_end(raw, heads, h)
            if appdocs.RATIONALE.search(h.title):
                listed(h.index, end, [], f"a section about a decision: {speaks_of_vm(h.title, rules)}")
            else:
                block = appdocs.pointer_block(rel, h.level, ctx.facts).rstrip("\n").split("\n")
                put(h.index, end, block)
            protected.append((h.index, end))

    units = _units("".join(raw))
    fences = [u for u in units if u.kind == "fence"]
    for u in units:
        if u.kind == "fence" or inside(u.start):
            continue
        orig = lines[u.start : u.end]
        joined = "\n".join(orig)
        section = section_of(u.start)
        if u.kind == "code":
            if links_only:
                continue
            vm, _ = _script_refs(joined, ctx, package)
            if vm and u.info in _SHELL_INFO:
                put(u.start, u.end, [])
            elif has_reference(joined, rules):
                new = rewrite_command_line(joined, rules)
                put(u.start, u.end, [] if new is None else [new])
            continue
        if u.kind in ("row", "item") and not links_only:
            vm, real = _script_refs(joined, ctx, package)
            if vm and not real and _simple(u, lines):
                put(u.start, u.end, [])
                continue
            if vm:
                listed(u.start, u.end, [], f"names the removed VM script(s) {', '.join(vm)} next to others")
                continue
        links = links_to(rel, joined, ctx.gone)
        if links and u.kind == "item" and _simple(u, lines):
            rest = _LINK.sub("", re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", joined)).strip(" \t-–—:.,;()")
            if not rest:
                put(u.start, u.end, [])
                continue
        cur = [repoint_paths(repoint_links(rel, x, ctx.gone, rules), ctx.gone) for x in orig]
        if links_only:
            if cur != orig:
                put(u.start, u.end, cur)
            continue
        what = speaks_of_vm("\n".join(cur), rules, section)
        if record:
            if cur != orig:
                put(u.start, u.end, cur)
            if what and u.kind not in ("code",):
                listed(
                    u.start,
                    u.end,
                    cur,
                    f"a decision record (history) that speaks of {what}",
                    f"keep it as history; the record's status becomes: {SUPERSEDED}",
                )
            continue
        if not what:
            if cur != orig:
                put(u.start, u.end, cur)
            continue
        sure = [sure_rewrite(x, rules) for x in cur]
        if not speaks_of_vm("\n".join(sure), rules, section):
            put(u.start, u.end, sure)
            continue
        if u.kind == "item" and _simple(u, lines) and _vm_only(joined, ctx, section):
            put(u.start, u.end, [])
            continue
        listed(u.start, u.end, _propose(u.kind, cur, ctx, section), f"speaks of {what}")

    code = {n for f in fences for n in range(f.start, f.end)}
    for n, line in enumerate(lines):  # reference definitions (`[vm]: docs/vm.md`) are no units
        if n not in code and not inside(n) and _REF_DEF.match(line) and out[n] == [line]:
            new = repoint_links(rel, line, ctx.gone, rules)
            if new != line:
                put(n, n + 1, [new])
    for f in fences:  # a code block whose every line went, goes
        body = range(f.start + 1, f.end - 1)
        if (
            len(body)
            and all(n in touched and not out[n] for n in body if lines[n].strip())
            and any(lines[n].strip() for n in body)
        ):
            put(f.start, f.end, [])
    return _assemble(out, touched, nl, text), unsure, accepted


def _simple(u: _Unit, lines: list[str]) -> bool:
    """A list item that holds only this paragraph (removing it takes nothing else with it)."""
    if u.kind != "item":
        return True
    if u.item is None or u.item[0] != u.start:
        return False
    return all(not lines[n].strip() for n in range(u.end, min(u.item[1], len(lines))))


def _assemble(out: list[list[str]], touched: set[int], nl: str, original: str) -> str:
    """The new lines; a removal leaves no double blank line (and none at the start or the end)."""
    result: list[str] = []
    removed = False
    for n, new in enumerate(out):
        if not new and n in touched:
            removed = True
            continue
        for line in new:
            if not line.strip():
                if removed and (not result or not result[-1].strip()):
                    continue
            else:
                removed = False
            result.append(line)
    while removed and result and not result[-1].strip():
        result.pop()
    if not result:
        return ""
    text = nl.join(result)
    return text + nl if original.endswith(("\n", "\r")) else text


# --------------------------------------------------------------------------- code and configuration


def rewrite_code(
    rel: str, text: str, rules: Rules = DEFAULT_RULES, accept: Sequence[str] = ()
) -> str | tuple[str, list[Unsure], list[Unsure]]:
    """Source, configuration and scripts: comment lines, command lines and addresses (the text only;
    :func:`plan_code` also returns the comments no rule is sure about)."""
    return plan_code(rel, text, rules, accept)[0]


def plan_code(
    rel: str, text: str, rules: Rules = DEFAULT_RULES, accept: Sequence[str] = ()
) -> tuple[str, list[Unsure], list[Unsure]]:
    prefixes = _comment_prefix(rel)
    shell = is_shell(rel, text)
    out = []
    unsure: list[Unsure] = []
    accepted: list[Unsure] = []
    for n, line in enumerate(text.splitlines(keepends=True)):
        body, newline = split_newline(line)
        stripped = body.lstrip()
        if not has_reference(body, rules):
            out.append(line)
            continue
        if stripped.startswith(prefixes) and not (shell and stripped.startswith("#!")):
            if has_multipass_command(stripped):
                continue  # a comment explaining a multipass command: obsolete
            sure = sure_rewrite(body, rules)
            if not speaks_of_vm(sure, rules):
                out.append(sure + newline)
                continue
            proposal = proposed_rewrite(body, rules)
            ok = not speaks_of_vm(proposal, rules)
            item = Unsure(rel, n + 1, body, proposal if ok else "(remove the line)", "a comment about the VM")
            if item.accepted_by(accept):
                accepted.append(item)
                if ok:
                    out.append(proposal + newline)
            else:
                unsure.append(item)
                out.append(line)
            continue
        if shell:
            new = rewrite_command_line(line, rules)
            if new is not None:
                out.append(new)
            continue
        out.append(proposed_rewrite(map_embedded_commands(rewrite_addresses(body, rules)), rules) + newline)
    return "".join(out), unsure, accepted


def rewrite_package_json(text: str, rules: Rules, vm_scripts: frozenset[str], package: str = "") -> str:
    """The scripts that only manage the VM (and those naming its address) removed; nothing else moves."""

    def drop(name: str, command: str) -> bool:
        label = f"{package}:{name}" if package else name
        return (label in vm_scripts if package else name in vm_scripts) or has_reference(command, rules)

    new, _ = packagejson.remove_scripts(text, drop)
    return new


# --------------------------------------------------------------------------- one file


def rewrite_file(
    rel: str, text: str, ctx: Context, accept: Sequence[str] = (), sections: bool = True
) -> tuple[str, list[Unsure], list[Unsure]]:
    """One file rewritten by the rules of its type (see the module's docstring)."""
    rules = ctx.rules
    for pattern, repl in rules.replacements:
        text = re.sub(pattern, repl, text)
    suffix = PurePosixPath(rel).suffix.lower()
    if suffix in MARKDOWN:
        return plan_markdown(rel, text, ctx, accept, sections=sections)
    if is_env_file(rel):
        if rel == envfile.EXAMPLE:
            text = envexample.point_at(text, ctx.facts.services, rules)
        return envexample.rewrite_env(
            text, rules, ctx.facts.manager, dict(ctx.gone), tuple(accept), rel, ctx.vm_scripts
        )
    if PurePosixPath(rel).name == "package.json":
        package = str(PurePosixPath(rel).parent)
        return rewrite_package_json(text, rules, ctx.vm_scripts, "" if package == "." else package), [], []
    if not has_reference(text, rules):
        return text, [], []
    return plan_code(rel, text, rules, accept)


def rewrite(rel: str, text: str, rules: Rules = DEFAULT_RULES) -> str:
    """A file's text with every reference rewritten by the sure rules (by file type; no app context)."""
    return rewrite_file(rel, text, Context(rules=rules), sections=False)[0]
