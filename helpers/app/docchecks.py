"""Checks that catch false docs in the app repository, after phase 1 has edited it.

The phase-1 verifications prove that Multipass words are gone; these prove that what is left is
true. Each check reads the repository (through :class:`~helpers.app.appfiles.Tree`, so a dry run's
planned files can be checked too) and returns :class:`Finding` s with ``file:line``:

* :func:`commands`: every ``pnpm <name>`` / ``pnpm run <name>`` (and npm, yarn, bun) in a code span or
  code block of the app's Markdown names a script of ``package.json`` (the root's, or the workspace
  package's it runs in: ``--filter``, ``-C``, ``cd apps/web``), a verb of the package manager, or a
  binary of a dependency (``pnpm drizzle-kit generate``); so does one in a code span of an
  ``.env.example`` comment ("get the address with `pnpm vm:ip`");
* :func:`script_rows`: no table row or list item documents a script ``package.json`` does not have
  (written ``pnpm vm:up`` or just ``vm:up``);
* :func:`vm_text`: no line of README, CLAUDE.md, docs/ or ``.env.example`` still speaks of the VM,
  Multipass, the VM's address (the default network's, and every non-local host the app used before)
  or Coolify as the local setup; the Docker troubleshooting guide may speak of WSL's VM, and a decision
  record marked superseded tells what was decided then;
* :func:`links`: no Markdown link, path named in the docs, or path in an ``.env.example`` comment
  points at a file that does not exist;
* :func:`identity`: the database user and name and the Redis db index are the ones the app had
  before (``before``: its profile before the migration), and every key of ``.env.example`` is kept;
* :func:`uncommitted`: once phase 1 has committed, nothing it changed is left out of the commit.

:func:`findings` runs them all; :func:`check_docs` records them in a verification table
(:class:`helpers.core.checks.Checklist`), one row per check, each able to fail; :func:`check_scope` is
the verification of a task that rewrites some files (1.6, 1.9 to 1.12): a fresh plan has nothing
left to do, no line is left that no rule is sure about (unless accepted), and these checks pass there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from markdown_it import MarkdownIt

from helpers.app import (
    appdocs,
    envfile,
    gitrepo,
    packagejson,
    pmcommand,
    profile,
    references,
    rewriting,
    vmtext,
)
from helpers.app.appfiles import Tree
from helpers.app.vmtext import DEFAULT_RULES, Rules

CHECKS: dict[str, str] = {
    "commands": "every pnpm/npm/yarn command in the docs and .env.example names a script, a verb or a binary",
    "script-rows": "no table row or list item documents a script package.json does not have",
    "vm-text": "no VM, Multipass, VM address or local Coolify left in the docs and .env.example",
    "links": "no link or path in the docs or .env.example comments points at a missing file",
    "identity": "the database user and name, the Redis db index and every env key are kept",
    "clean": "after the commit, git status is clean (nothing changed and left uncommitted)",
}
HINTS: dict[str, str] = {
    "commands": "change each command to a script the app has (package.json), or add the script",
    "script-rows": "remove the row or item, or make it name the script that replaced it",
    "vm-text": "rewrite or remove these lines by hand (each names the file and line)",
    "links": "point the link at the page that replaced it, or remove it",
    "identity": "restore the user, database name and db index in .env.example (and the lost keys)",
    "clean": "commit these paths with the others (they were changed by phase 1) or restore them",
}
GUIDE = appdocs.GUIDE  # may speak of WSL's VM
LOCAL_HOSTS = vmtext.LOCAL_HOSTS
_NOT_SHELL = frozenset({"ts", "tsx", "js", "jsx", "javascript", "typescript", "json", "jsonc", "sql", "diff"})
_PM = re.compile(r"(?<![\w./@-])(?:pnpm|npm|yarn|bun)\s+\S")
_PATH = re.compile(
    r"(?<![\w/.:@-])((?:\.{1,2}/)?[\w.-]+(?:/[\w.-]+)+\.(?:md|mdx|sh|ts|tsx|js|mjs|cjs|json|ya?ml|sql|toml))\b"
)
# Binaries whose package has another name.
_BIN_PACKAGES = {
    "tsc": ("typescript",),
    "run-p": ("npm-run-all", "npm-run-all2"),
    "run-s": ("npm-run-all", "npm-run-all2"),
    "playwright": ("@playwright/test", "playwright"),
    "next": ("next",),
}


@dataclass(frozen=True)
class Finding:
    """One false or stale line: which check, where, the line as written, and what is wrong."""

    check: str
    path: str
    line: int  # 1-based; 0 when the finding is about the file as a whole
    text: str
    why: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path

    def __str__(self) -> str:
        return f"{self.where}: {self.why}: {self.text}"


# --------------------------------------------------------------------------- Markdown, read once


@dataclass(frozen=True)
class Span:
    """A code span (`` `pnpm dev` ``) with where it sits."""

    text: str
    line: int
    container: str  # "row" (table body), "item" (list item), "header", "para", "heading"
    container_line: int
    context: str  # the table's header cells or the section's heading, lower case


@dataclass(frozen=True)
class CodeLine:
    text: str
    line: int
    block: int  # which code block (cd in one block carries to its next lines)
    info: str  # the fence's language


@dataclass
class Markdown:
    lines: list[str]
    spans: list[Span] = field(default_factory=list)
    code: list[CodeLine] = field(default_factory=list)
    links: list[tuple[str, int]] = field(default_factory=list)  # (href, line)
    in_code: set[int] = field(default_factory=set)  # 1-based lines inside code blocks


_MD = MarkdownIt("commonmark").enable("table")


def read_markdown(text: str) -> Markdown:
    """Code spans (with their table row / list item), code block lines and links, with line numbers."""
    lines = text.splitlines()
    doc = Markdown(lines)
    container: list[tuple[str, int]] = []
    header: list[str] = []
    heading = ""
    in_head = in_heading = False
    blocks = 0
    for tok in _MD.parse(text):
        if tok.type in ("fence", "code_block") and tok.map:
            start = tok.map[0] + (1 if tok.type == "fence" else 0)
            for i, body in enumerate(tok.content.splitlines()):
                doc.code.append(CodeLine(body, start + i + 1, blocks, tok.info.strip().lower()))
            doc.in_code.update(range(tok.map[0] + 1, tok.map[1] + 1))
            blocks += 1
        elif tok.type == "thead_open":
            in_head, header = True, []
        elif tok.type == "thead_close":
            in_head = False
        elif tok.type == "table_close":
            header = []
        elif tok.type == "tr_open" and tok.map:
            container.append(("header" if in_head else "row", tok.map[0] + 1))
        elif tok.type == "list_item_open" and tok.map:
            container.append(("item", tok.map[0] + 1))
        elif tok.type in ("tr_close", "list_item_close") and container:
            container.pop()
        elif tok.type in ("heading_open", "heading_close"):
            in_heading = tok.type == "heading_open"
        elif tok.type == "inline" and tok.map:
            if in_head:
                header.append(tok.content.lower())
            if in_heading:
                heading = tok.content.lower()
            kind, at = container[-1] if container else ("para", tok.map[0] + 1)
            kind = "heading" if in_heading else kind
            context = " ".join(header) if kind in ("row", "header") else heading
            for child in tok.children or []:
                where = _line_of(lines, tok.map, child)
                if child.type == "code_inline":
                    doc.spans.append(Span(child.content, where, kind, at, context))
                elif child.type == "link_open":
                    doc.links.append((str(child.attrs.get("href", "")), where))
    return doc


def _line_of(lines: list[str], span: list[int], child: Any) -> int:
    """The 1-based line of an inline child inside a block spanning ``span`` (0-based, end exclusive)."""
    needle = ""
    if child.type == "code_inline":
        needle = child.content
    elif child.type == "link_open":
        needle = str(child.attrs.get("href", ""))
    for i in range(span[0], min(span[1], len(lines))):
        if needle and needle in lines[i]:
            return i + 1
    return span[0] + 1


# --------------------------------------------------------------------------- the app, as the checks see it


class _App:
    def __init__(
        self,
        app: Tree | str | os.PathLike[str],
        now: profile.Profile | None = None,
        planned_scripts: Iterable[str] = (),
        planned_files: Iterable[str] = (),
    ):
        self.tree = Tree.of(app)
        self.now = now or profile.read(self.tree)
        self._md: dict[str, Markdown] = {}
        self.planned_scripts = frozenset(planned_scripts)  # root scripts another task adds (1.8)
        self.planned_files = frozenset(planned_files)  # files another task writes (1.13)

    def script_names(self, package: str = "") -> set[str]:
        names = self.now.script_names(package)
        return names | self.planned_scripts if not package else names

    def markdown_files(self) -> list[str]:
        return [rel for rel in self.tree.files() if PurePosixPath(rel).suffix.lower() in rewriting.MARKDOWN]

    def md(self, rel: str) -> Markdown:
        if rel not in self._md:
            self._md[rel] = read_markdown(self.tree.read(rel) or "")
        return self._md[rel]

    def package_of(self, rel: str) -> str:
        """The workspace package a doc belongs to ("" for the root): its commands run there."""
        folder = str(PurePosixPath(rel).parent)
        return next((p.path for p in self.now.packages if folder == p.path), "")

    def has_binary(self, name: str) -> bool:
        deps = set(self.now.dependencies)
        if name in deps or any(d.split("/")[-1] == name for d in deps):
            return True
        if any(p in deps for p in _BIN_PACKAGES.get(name, ())):
            return True
        return (self.tree.root / "node_modules" / ".bin" / name).exists()


# --------------------------------------------------------------------------- check 1: commands


@dataclass(frozen=True)
class _Use:
    """A package-manager call found in the docs and the package it runs in."""

    call: pmcommand.Call
    cwd: str
    shown: str


def _calls(text: str, cwd: str) -> Iterator[tuple[_Use | None, str]]:
    """Package-manager calls in a line of code (``cd`` changes ``cwd`` for what follows); the new cwd."""
    for tokens in pmcommand.simple_commands(text):
        tokens = pmcommand.strip_wrappers([t for t in tokens if t not in ("$", ">")])
        if not tokens:
            continue
        prog = pmcommand.program(tokens)
        if prog == "cd":
            target = tokens[1] if len(tokens) > 1 else ""
            if target in ("", "~", "-") or target.startswith("/"):
                cwd = ""
            else:
                norm = os.path.normpath(os.path.join(cwd or ".", target)).replace(os.sep, "/")
                cwd = "" if norm in (".", "") or norm.startswith("..") else norm
            yield None, cwd
            continue
        call = pmcommand.parse(tokens)
        if call is not None:
            yield _Use(call, cwd, " ".join(tokens)), cwd


def _pm_texts(text: str) -> list[str]:
    """The part of a line from each ``pnpm``/``npm``/``yarn``/``bun`` onwards (``run: pnpm x`` in YAML)."""
    return [text[m.start() :] for m in _PM.finditer(text)]


def _problem(use: _Use, app: _App) -> str | None:
    """What is wrong with a call, or None when it runs a script, a verb or a binary."""
    call, now = use.call, app.now
    if call.script is None:
        return None  # a verb (install, exec, dlx...) or `pnpm run` alone (lists the scripts)
    if call.recursive:
        everywhere = [p.path for p in now.packages] + [""]
        if any(call.script in app.script_names(p) for p in everywhere):
            return None
        return f"no package has a script {call.script!r}"
    targets = [use.cwd]
    if call.selectors:
        targets = []
        for selector in call.selectors:
            package = now.package(selector.strip("'\"").removeprefix("./").rstrip("."))
            if package is None:
                return f"no workspace package {selector!r}"
            targets.append(package.path)
    for target in targets:
        if call.script in app.script_names(target):
            continue
        if not call.explicit_run and app.has_binary(call.script):
            continue
        where = f"{target}/package.json" if target else "package.json"
        return f"{where} has no script {call.script!r}"
    return None


def commands(app: Tree | str | os.PathLike[str], now: profile.Profile | None = None) -> list[Finding]:
    """Every package-manager command in the code of the app's Markdown names a real script."""
    a = app if isinstance(app, _App) else _App(app, now)
    found = []
    for rel in a.markdown_files():
        md = a.md(rel)
        base = a.package_of(rel)
        cwd_of_block: dict[int, str] = {}
        for code in md.code:
            if code.info.split(" ")[0] in _NOT_SHELL:
                continue
            cwd = cwd_of_block.get(code.block, base)
            body = re.sub(r"\s#\s.*$", "", code.text)
            starts = re.match(r"\s*(?:\$\s+)?(?:cd|pnpm|npm|yarn|bun)\b", body)
            if not starts and (m := _PM.search(body)):
                body = body[m.start() :]  # `- run: pnpm docker:up`, `RUN pnpm build`
            for use, after in _calls(body, cwd):
                if use is not None and (why := _problem(use, a)):
                    found.append(Finding("commands", rel, code.line, code.text.strip(), why))
                cwd = after
            cwd_of_block[code.block] = cwd
        for span in md.spans:
            for part in _pm_texts(span.text)[:1]:
                for use, _ in _calls(part, base):
                    if use is not None and (why := _problem(use, a)):
                        found.append(Finding("commands", rel, span.line, f"`{span.text}`", why))
    env = a.now.env_file
    if env:  # "Get the address with `pnpm vm:ip`" in a comment of .env.example
        for n, entry in _env_lines(a.tree.read(env) or ""):
            if entry.kind != "comment":
                continue
            for span in re.findall(r"`([^`\n]+)`", entry.raw):
                for part in _pm_texts(span)[:1]:
                    for use, _ in _calls(part, ""):
                        if use is not None and (why := _problem(use, a)):
                            found.append(Finding("commands", env, n, entry.raw.strip(), why))
    return _unique(found)


# --------------------------------------------------------------------------- check 2: rows and items

_SCRIPT_NAME = re.compile(r"^[a-z][\w.-]*(?::[\w.*-]+)+$|^[a-z][\w-]*$")
_SCRIPTS_CONTEXT = re.compile(r"script|command|pnpm|npm|yarn", re.I)


def script_rows(
    app: Tree | str | os.PathLike[str],
    before: profile.Profile | None = None,
    now: profile.Profile | None = None,
) -> list[Finding]:
    """Table rows and list items that document a script ``package.json`` does not have.

    A row or item documents a script when a code span in it is a package-manager command
    (``pnpm vm:up``), or a bare script name (``vm:up``) that was a script before the migration or
    that sits in a table or section about scripts or commands.
    """
    a = app if isinstance(app, _App) else _App(app, now)
    had = {s.name for s in before.all_scripts()} if before else set()
    found = []
    for rel in a.markdown_files():
        md = a.md(rel)
        base = a.package_of(rel)
        lines = md.lines
        for span in md.spans:
            if span.container not in ("row", "item"):
                continue
            why = None
            if _pm_texts(span.text):
                for use, _ in _calls(_pm_texts(span.text)[0], base):
                    if use is not None:
                        why = why or _problem(use, a)
            elif _SCRIPT_NAME.match(span.text) and span.text not in a.script_names(base):
                if span.text in had:
                    why = f"script {span.text!r} was removed from package.json"
                elif ":" in span.text and _SCRIPTS_CONTEXT.search(span.context):
                    why = f"package.json has no script {span.text!r}"
            if why:
                text = lines[span.line - 1].strip() if 0 < span.line <= len(lines) else span.text
                found.append(Finding("script-rows", rel, span.line, text, why))
    return _unique(found)


# --------------------------------------------------------------------------- check 3: VM text


def vm_hosts(before: profile.Profile | None) -> set[str]:
    """The non-local hosts the app's services were on before the migration (the VM's address or name)."""
    return profile.vm_hosts(before)


def vm_text(
    app: Tree | str | os.PathLike[str],
    before: profile.Profile | None = None,
    rules: Rules = DEFAULT_RULES,
    now: profile.Profile | None = None,
) -> list[Finding]:
    """Lines of the docs (README, CLAUDE.md, docs/, package READMEs) and of ``.env.example`` that still
    speak of the VM as the local setup. The Docker troubleshooting guide is left out (WSL's VM)."""
    a = app if isinstance(app, _App) else _App(app, now)
    rules = rules.with_hosts(vm_hosts(before))
    found = []
    for rel in a.now.docs:
        if rel == GUIDE or not a.tree.exists(rel):
            continue
        text = a.tree.read(rel) or ""
        if rewriting.is_history(rel, text):
            continue  # a decision record marked superseded tells what was decided then
        section = ""
        heads = {h.index: h.title for h in appdocs.headings(text.splitlines())}
        for n, line in enumerate(text.splitlines(), start=1):
            section = heads.get(n - 1, section)
            what = vmtext.speaks_of_vm(line, rules, section)
            if what:
                found.append(Finding("vm-text", rel, n, line.strip(), f"speaks of {what}"))
    env = a.now.env_file
    if env:
        for n, entry in _env_lines(a.tree.read(env) or ""):
            if entry.kind == "comment":
                what = vmtext.speaks_of_vm(entry.raw, rules)
            elif entry.kind == "assign":
                what = vmtext.speaks_of_vm(entry.value, rules)
                if what is None and "COOLIFY" in entry.key.upper() and _host_of(entry.value) in LOCAL_HOSTS:
                    what = "Coolify as the local setup"
            else:
                continue
            if what:
                found.append(Finding("vm-text", env, n, entry.raw.strip(), f"speaks of {what}"))
    return found


def _host_of(value: str) -> str:
    m = re.match(r"^[a-z][a-z0-9+.-]*://(?:[^@/]*@)?(\[[^\]]*\]|[^:/?#]*)", value.strip(), re.I)
    return m.group(1).lower() if m else "?"


def _env_lines(text: str) -> Iterator[tuple[int, envfile.Entry]]:
    n = 1
    for entry in envfile.parse(text):
        yield n, entry
        n += entry.raw.count("\n") or 1


# --------------------------------------------------------------------------- check 4: links and paths


def links(
    app: Tree | str | os.PathLike[str],
    before: profile.Profile | None = None,
    now: profile.Profile | None = None,
) -> list[Finding]:
    """Markdown links that point at files which do not exist, and repository paths named in the docs
    or in ``.env.example`` comments that no longer exist (that ``before`` had; without ``before``,
    any path in an existing folder)."""
    a = app if isinstance(app, _App) else _App(app, now)
    files = set(a.tree.files())
    folders = {str(p) for f in files for p in PurePosixPath(f).parents if str(p) != "."}
    had = set(before.files) if before is not None else None
    found = []

    def gone(source: str, target: str, link: bool = True) -> bool:
        rel = rewriting.resolve_link(source, target)
        if rel is None or rel in files or rel in folders or rel in a.planned_files:
            return False
        if link:
            return True
        return rel in had if had is not None else str(PurePosixPath(rel).parent) in folders

    for rel in a.markdown_files():
        md = a.md(rel)
        lines = md.lines
        for href, line in md.links:
            if gone(rel, href):
                text = lines[line - 1].strip() if 0 < line <= len(lines) else href
                found.append(Finding("links", rel, line, text, f"links to {href}, which does not exist"))
        for n, line in enumerate(lines, start=1):
            if n in md.in_code:
                continue
            for path in _mentioned_paths(line, folders):
                if gone(rel, path, link=False) and gone("", path, link=False):
                    found.append(
                        Finding("links", rel, n, line.strip(), f"names {path}, which does not exist")
                    )
    env = a.now.env_file
    if env:
        for n, entry in _env_lines(a.tree.read(env) or ""):
            if entry.kind == "comment":
                for path in _mentioned_paths(entry.raw, folders):
                    if gone("", path, link=False):
                        text = entry.raw.strip()
                        found.append(Finding("links", env, n, text, f"names {path}, which does not exist"))
    return _unique(found)


def _mentioned_paths(line: str, folders: Collection[str]) -> list[str]:
    """Repository paths named in a line outside links and URLs (``docs/vm-setup.md``, ``scripts/x.sh``)."""
    plain = re.sub(r"\[[^\]]*\]\([^)]*\)|https?://\S+", " ", line)
    out = []
    for m in _PATH.finditer(plain):
        path = m.group(1)
        first = path.removeprefix("./").split("/", 1)[0]
        if first in folders or first == "..":
            out.append(path)
    return out


# --------------------------------------------------------------------------- check 5: identity


def identity(
    app: Tree | str | os.PathLike[str],
    before: profile.Profile,
    now: profile.Profile | None = None,
    keep: bool = True,
) -> list[Finding]:
    """The database user and name, the Redis db index, and every key of ``.env.example``, as before."""
    a = app if isinstance(app, _App) else _App(app, now)
    env = a.now.env_file or before.env_file or ".env.example"
    text = a.tree.read(env) or ""
    where = {key: n for n, e in _env_lines(text) if e.kind == "assign" for key in [e.key]}
    found = []

    def line_of(endpoint: profile.Endpoint | None, part: str) -> tuple[int, str]:
        key = (endpoint.sources.get(part) if endpoint else None) or (endpoint.url_key if endpoint else None)
        n = where.get(key or "", 0)
        lines = text.splitlines()
        return n, (lines[n - 1].strip() if 0 < n <= len(lines) else key or "")

    parts: dict[str, list[tuple[str, Callable[[profile.Endpoint], Any], str]]] = {
        "database": [
            ("user", lambda e: e.user, "the database user"),
            ("database", lambda e: e.database, "the database name"),
        ],
        "redis": [("database", lambda e: e.index, "the Redis db index")],
    }
    for service, checks in parts.items():
        old: profile.Endpoint | None = getattr(before, service)
        new: profile.Endpoint | None = getattr(a.now, service)
        if old is None:
            continue
        if new is None:
            found.append(Finding("identity", env, 0, "", f"no {service} settings any more"))
            continue
        for part, value, label in checks if keep else []:
            if value(old) != value(new):
                n, shown = line_of(new, part)
                why = f"{label} changed from {value(old)!r} to {value(new)!r}"
                found.append(Finding("identity", env, n, _masked(shown), why))
        if old.url_key is None and new.url_key and new.url_key not in before.env_keys:
            keys = ", ".join(dict.fromkeys(old.sources.values()))
            why = f"{new.url_key} was added, but the app reads {keys}"
            found.append(Finding("identity", env, where.get(new.url_key, 0), new.url_key, why))
    for key in before.env_keys:
        if key not in a.now.env_keys:
            found.append(Finding("identity", env, 0, key, f"the key {key} was dropped"))
    return found


def _masked(line: str) -> str:
    from helpers.core.secrets import scrub

    return scrub(line, values=[])


# --------------------------------------------------------------------------- check 6: committed


def uncommitted(app: Tree | str | os.PathLike[str]) -> list[Finding]:
    """Paths git sees as changed, deleted or new (ignored files, such as ``.env``, excluded)."""
    root = Tree.of(app).root
    return [
        Finding("clean", c.path, 0, c.code.strip(), f"{c.kind} and not committed")
        for c in gitrepo.changes(root)
        if not gitrepo.never_commit(c.path)
    ]


# --------------------------------------------------------------------------- all of them


def findings(
    app: Tree | str | os.PathLike[str],
    before: profile.Profile | None = None,
    rules: Rules = DEFAULT_RULES,
    accepted: Iterable[str] = (),
    committed: bool = False,
    paths: Callable[[str], bool] | None = None,
    planned_scripts: Iterable[str] = (),
    planned_files: Iterable[str] = (),
    keep_identity: bool = True,
    left_alone: Iterable[str] = (),
) -> list[Finding]:
    """Every check's findings (``identity`` only with ``before``; ``clean`` only once ``committed``),
    minus the ``accepted`` lines (``file:line`` or the exact text of lines a person decided to keep).

    ``paths`` limits the findings to some files (a task checks what it writes); ``planned_scripts``
    and ``planned_files`` are what another phase-1 task adds (the ``docker:*`` scripts of 1.8, the
    guide of 1.13), counted as there; ``keep_identity=False`` when the runbook's database identity was
    chosen on purpose (the keys are still checked); ``left_alone`` are paths that were dirty before
    phase 1 and are not its to commit (the ``clean`` check leaves them out).
    """
    a = _App(app, None, planned_scripts, planned_files)
    out = commands(a) + script_rows(a, before) + vm_text(a, before, rules) + links(a, before)
    if before is not None:
        out += identity(a, before, keep=keep_identity)
    if committed:
        skip = set(left_alone)
        out += [f for f in uncommitted(a.tree) if f.path not in skip]
    keep = set(accepted)
    return [f for f in out if f.where not in keep and f.text not in keep and (paths is None or paths(f.path))]


def check_docs(
    check: Any,
    app: Tree | str | os.PathLike[str],
    before: profile.Profile | None = None,
    rules: Rules = DEFAULT_RULES,
    accepted: Iterable[str] = (),
    committed: bool = False,
    shown: int = 6,
    paths: Callable[[str], bool] | None = None,
    planned_scripts: Iterable[str] = (),
    planned_files: Iterable[str] = (),
    keep_identity: bool = True,
    left_alone: Iterable[str] = (),
) -> list[Finding]:
    """One verification row per check (``check`` is a :class:`~helpers.core.checks.Checklist`)."""
    found = findings(
        app,
        before,
        rules,
        accepted,
        committed,
        paths,
        planned_scripts,
        planned_files,
        keep_identity,
        left_alone,
    )
    for name, title in CHECKS.items():
        if (name == "identity" and before is None) or (name == "clean" and not committed):
            continue
        mine = [f for f in found if f.check == name]
        detail = "; ".join(f"{f.where} {f.why}" for f in mine[:shown])
        if len(mine) > shown:
            detail += f"; and {len(mine) - shown} more"
        check(title, not mine, detail or "none", hint=HINTS[name])
    return found


def check_scope(
    check,
    app: Tree | str | os.PathLike[str],
    scope: str,
    ctx: rewriting.Context,
    accept: Sequence[str] = (),
    keep_identity: bool = True,
) -> references.Plan:
    """The verification of a task that rewrites ``scope`` (``all``, ``docs`` or one file), read from
    the files: a fresh plan has nothing more to change, every line about the VM was rewritten by a
    sure rule or accepted (else the list, with the proposals), and the docs checks
    (these checks) find nothing false in what the scope holds. The ``docker:*``
    scripts (task 1.8) and the troubleshooting guide (1.13) count as there: other tasks add them."""
    tree = Tree.of(app)
    again = references.plan(tree, ctx.rules, scope, accept, ctx)
    pending = [c for c in again.changes if c.needed]
    check(
        "a fresh plan finds nothing more to rewrite",
        not pending,
        ", ".join(c.path for c in pending[:8]) or "nothing",
        hint="run the task again without dry_run",
    )
    references.check_unsure(check, again.unsure)
    check_docs(
        check,
        tree,
        profile.baseline(tree.root),
        ctx.rules,
        paths=references.in_scope(scope, ctx.rules),
        planned_scripts=packagejson.DOCKER_SCRIPTS,
        planned_files=[appdocs.GUIDE],
        keep_identity=keep_identity,
    )
    return again


def show(found: Iterable[Finding], title: str = "What the docs get wrong") -> None:
    from helpers.core.display import show_table

    rows = [(f.check, f.where, f.why, _masked(f.text)) for f in found]
    show_table(("check", "where", "what is wrong", "line"), rows, title=f"{title}: {len(rows)}")


def _unique(found: list[Finding]) -> list[Finding]:
    return list(dict.fromkeys(found))
