"""Find and rewrite the app repository's references to the Multipass VM (tasks 1.6 and 1.12).

A *reference* is anything that only made sense while PostgreSQL and Redis ran in a Multipass VM:
the word ``multipass`` (commands, links, prose), the VM's private address ``192.168.64.<n>``
(Multipass's default network on macOS) and the Coolify dashboard on that address
(``http://192.168.64.<n>:8000``). :func:`scan` finds them in every non-ignored text file;
:func:`plan_cleanup` plans the rewrite; the checks re-scan.

The rewrite rules are *stable*: each one only fires on text that still holds a reference, and
its output holds none, so the tasks that touch the same files (1.6, 1.9, 1.10, 1.11, 1.12) can run
in any order and a second run changes nothing.

* VM documentation pages (``docs/`` pages whose file name or title is about Multipass or the VM) and
  files named after Multipass are deleted; links to deleted pages are removed from every Markdown file.
* URLs and addresses: ``postgresql://u:p@192.168.64.5:5432/app`` → ``...@localhost:5432/app``, any
  other VM address → ``localhost``; the Coolify dashboard on the VM → ``http://your-coolify-server:8000``
  (Coolify is no longer part of local development; in production it runs on the server, phase 2).
* Commands (code blocks, shell scripts, inline code): ``multipass launch|start`` →
  ``docker compose up -d --wait``, ``stop`` → ``docker compose stop``, ``info|list`` →
  ``docker compose ps``, ``delete`` → ``docker compose down -v``, ``exec <vm> -- psql ...`` →
  ``docker compose exec postgres psql ...``; other ``multipass`` command lines (install, shell, mount,
  purge...) are removed, and so are comment lines that explain a ``multipass`` command.
* Prose: "in the Multipass VM" → "in Docker", "the Multipass VM" → "the Docker services", links to
  multipass.run → Docker's installation page, and finally "Multipass" → "Docker".
* ``package.json``: scripts whose command uses ``multipass`` or the VM address are removed.

Anything a rule cannot express is still found by the re-scan, which then fails with the file and line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from helpers.app import envfile, packagejson
from helpers.app.appfiles import FileChange, Tree
from helpers.app.vmtext import (
    DEFAULT_RULES,
    Rules,
    find_in_text,
    has_multipass_command,
    has_reference,
    map_embedded_commands,
    rewrite_addresses,
    rewrite_command_line,
    rewrite_inline_code,
    rewrite_prose,
    split_newline,
)

MARKDOWN = (".md", ".mdx", ".markdown")


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    text: str
    what: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def scan(
    app: Tree | str | os.PathLike[str], rules: Rules = DEFAULT_RULES, under: str | None = None
) -> list[Hit]:
    """Every reference in the repository's non-ignored text files (or only those ``under`` a folder)."""
    tree = Tree.of(app)
    hits = []
    for rel, text in tree.text_files():
        if under and not _under(rel, under):
            continue
        for number, line, what in find_in_text(text, rules):
            shown = line.strip()
            hits.append(Hit(rel, number, shown if len(shown) <= 160 else shown[:157] + "...", what))
    return hits


def hit_rows(hits: Sequence[Hit]) -> list[tuple[str, str, str]]:
    """Rows for a table (secrets inside URLs scrubbed)."""
    from helpers.core.secrets import scrub

    return [(h.where, h.what, scrub(h.text, values=[])) for h in hits]


def show_hits(hits: Sequence[Hit], where: str = "") -> None:
    """A table of the hits: ``file:line``, what was found, the line (passwords in URLs masked)."""
    from helpers.core.display import show_table

    files = len({h.path for h in hits})
    title = f"{len(hits)} reference(s) in {files} file(s)" + (f" under {where}" if where else "")
    show_table(("where", "found", "text"), hit_rows(hits), title=title)


def _under(rel: str, folder: str) -> bool:
    return rel == folder or rel.startswith(folder.rstrip("/") + "/")


# --------------------------------------------------------------------------- text rules


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


def rewrite_code(rel: str, text: str, rules: Rules = DEFAULT_RULES) -> str:
    """Source, configuration and scripts: comment lines, command lines and addresses."""
    prefixes = _comment_prefix(rel)
    shell = is_shell(rel, text)
    out = []
    for line in text.splitlines(keepends=True):
        body, newline = split_newline(line)
        stripped = body.lstrip()
        if not has_reference(body, rules):
            out.append(line)
            continue
        if stripped.startswith(prefixes) and not (shell and stripped.startswith("#!")):
            if has_multipass_command(stripped):
                continue  # a comment explaining a multipass command: obsolete
            out.append(rewrite_prose(rewrite_inline_code(body, rules), rules) + newline)
            continue
        if shell:
            new = rewrite_command_line(line, rules)
            if new is not None:
                out.append(new)
            continue
        out.append(rewrite_prose(map_embedded_commands(rewrite_addresses(body, rules)), rules) + newline)
    return "".join(out)


_FENCE = re.compile(r"^\s{0,3}(?P<fence>`{3,}|~{3,})")


def rewrite_markdown(text: str, rules: Rules = DEFAULT_RULES) -> str:
    """Markdown: code blocks as shell code, prose by the phrase rules; emptied code blocks go."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    fence: str | None = None
    block_start = 0
    block_had_content = False
    drop_blank = False  # after a removed code block: no double blank line
    for line in lines:
        body, newline = split_newline(line)
        if drop_blank:
            drop_blank = False
            if not body.strip() and (not out or not out[-1].strip()):
                continue
        m = _FENCE.match(body)
        if fence is None and m:
            fence = m.group("fence")
            block_start, block_had_content = len(out), False
            out.append(line)
            continue
        if fence is not None:
            if (
                m
                and m.group("fence")[0] == fence[0]
                and len(m.group("fence")) >= len(fence)
                and not body.strip()[len(m.group("fence")) :].strip()
            ):
                content = [x for x in out[block_start + 1 :] if x.strip()]
                if block_had_content and not content:
                    del out[block_start:]
                    drop_blank = True
                else:
                    out.append(line)
                fence = None
                continue
            if body.strip():
                block_had_content = True
            if has_reference(body, rules):
                new = rewrite_command_line(line, rules)
                if new is not None:
                    out.append(new)
            else:
                out.append(line)
            continue
        if has_reference(body, rules):
            out.append(rewrite_prose(rewrite_inline_code(body, rules), rules) + newline)
        else:
            out.append(line)
    return "".join(out)


# --------------------------------------------------------------------------- VM pages and links

_VM_NAME = re.compile(r"(?:^|[-_.])(?:multipass|vm|vms|virtual-machine)(?:[-_.]|$)", re.IGNORECASE)
_VM_TITLE = re.compile(r"multipass|\bVMs?\b|virtual machine", re.IGNORECASE)


def first_title(text: str) -> str:
    for line in text.splitlines():
        m = re.match(r"^#\s+(.+?)\s*#*\s*$", line)
        if m:
            return m.group(1)
    return ""


def is_vm_page(rel: str, text: str | None, rules: Rules = DEFAULT_RULES) -> bool:
    """A documentation page about the VM: under the docs folder, named or titled after it."""
    path = PurePosixPath(rel)
    if not _under(rel, rules.docs_dir) or path.suffix.lower() not in MARKDOWN:
        return False
    return bool(_VM_NAME.search(path.stem)) or bool(_VM_TITLE.search(first_title(text or "")))


def is_multipass_file(rel: str) -> bool:
    """A file named after Multipass (cloud-init for the VM, a multipass/ folder...): VM-only."""
    return "multipass" in rel.lower()


_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_REF_DEF = re.compile(r"^\s{0,3}\[(?P<label>[^\]]+)\]:\s*(?P<target>\S+).*$")


def _resolve(source: str, target: str) -> str | None:
    """The repository path a relative link points to, or None for external links and anchors."""
    target = target.strip("<>")
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith(("#", "/")):
        return None
    target = target.split("#", 1)[0].split("?", 1)[0]
    if not target:
        return None
    parts: list[str] = []
    for part in (PurePosixPath(source).parent / target).parts:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def drop_links(rel: str, text: str, removed: set[str]) -> str:
    """Remove links to ``removed`` pages: a list item that is only the link goes; otherwise the text stays."""
    out = []
    labels_gone: set[str] = set()
    for line in text.splitlines(keepends=True):
        body, newline = split_newline(line)
        d = _REF_DEF.match(body)
        if d and _resolve(rel, d.group("target")) in removed:
            labels_gone.add(d.group("label").lower())
            continue
        links = [m for m in _LINK.finditer(body) if _resolve(rel, m.group("target")) in removed]
        item = re.match(r"^\s*(?:[-*+]|\d+[.)])\s+", body)
        if not links:
            if item and _mentions(body, removed):
                continue  # a list item pointing at a removed page by its path
            out.append(line)
            continue
        rest = _LINK.sub("", body[item.end() :] if item else body).strip(" \t-–—:.,;()")
        if item and not rest:
            continue
        new = body
        for m in links:
            new = re.sub(r"\s*\((?:see |details: |cf\. )?" + re.escape(m.group(0)) + r"\)", "", new)
            new = new.replace(m.group(0), m.group("text"))
        out.append(new + newline)
    result = "".join(out)
    for label in labels_gone:
        result = re.sub(r"\[([^\]]+)\]\[" + re.escape(label) + r"\]", r"\1", result, flags=re.IGNORECASE)
    return result


def _mentions(line: str, removed: set[str]) -> bool:
    """The line names a removed page by its repository path (``docs/vm-setup.md``), outside a link."""
    plain = _LINK.sub("", line)
    return any(re.search(r"(?<![\w/.-])" + re.escape(path) + r"(?![\w/-])", plain) for path in removed)


def links_to(rel: str, text: str, targets: set[str]) -> list[str]:
    """The links in ``text`` (a Markdown file at ``rel``) that point into ``targets``."""
    found = [m.group(0) for m in _LINK.finditer(text) if _resolve(rel, m.group("target")) in targets]
    found += [
        m.group(0).strip()
        for line in text.splitlines()
        if (m := _REF_DEF.match(line)) and _resolve(rel, m.group("target")) in targets
    ]
    return found


def committed_files(tree: Tree) -> list[str]:
    import subprocess

    if not tree._git:
        return []
    proc = subprocess.run(
        ["git", "-C", str(tree.root), "ls-tree", "-r", "-z", "--name-only", "HEAD"],
        capture_output=True,
        text=True,
    )
    return [p for p in proc.stdout.split("\0") if p] if proc.returncode == 0 else []


def removed_vm_pages(tree: Tree, rules: Rules = DEFAULT_RULES) -> set[str]:
    """VM pages that git HEAD has and the working tree (or the plan) no longer has."""
    return {
        rel
        for rel in committed_files(tree)
        if not tree.exists(rel) and is_vm_page(rel, tree.committed(rel), rules)
    }


# --------------------------------------------------------------------------- the plan


def rewrite(rel: str, text: str, rules: Rules = DEFAULT_RULES) -> str:
    """The file's text with every reference rewritten (by file type)."""
    for pattern, repl in rules.replacements:
        text = re.sub(pattern, repl, text)
    if not has_reference(text, rules):
        return text
    if PurePosixPath(rel).suffix.lower() in MARKDOWN:
        return rewrite_markdown(text, rules)
    if is_env_file(rel):
        return envfile.rewrite_references(text, rules)
    if PurePosixPath(rel).name == "package.json":
        text, _ = packagejson.remove_scripts(text, lambda _name, cmd: has_reference(cmd, rules))
    return rewrite_code(rel, text, rules)


def plan_cleanup(
    app: Tree | str | os.PathLike[str], rules: Rules = DEFAULT_RULES, scope: str = "all"
) -> list[FileChange]:
    """Plan the removal of every reference: ``scope="docs"`` (task 1.6) or ``"all"`` (task 1.12).

    Both delete the VM pages in the docs folder and drop links to them from every Markdown file;
    ``docs`` rewrites references inside the docs folder only, ``all`` everywhere and also deletes
    files named after Multipass.
    """
    if scope not in ("docs", "all"):
        raise ValueError(f"scope must be 'docs' or 'all', not {scope!r}")
    tree = Tree.of(app)
    files = dict(tree.text_files())
    delete = {rel for rel, text in files.items() if is_vm_page(rel, text, rules)}
    if scope == "all":
        delete |= {rel for rel in files if is_multipass_file(rel)}
    gone = delete | removed_vm_pages(tree, rules)
    changes = []
    for rel in sorted(files):
        text = files[rel]
        if rel in delete:
            why = (
                "VM documentation page" if is_vm_page(rel, text, rules) else "file for the Multipass VM only"
            )
            changes.append(FileChange(rel, text, None, f"{why}: removed"))
            continue
        new = text
        if scope == "all" or _under(rel, rules.docs_dir):
            new = rewrite(rel, new, rules)
        if PurePosixPath(rel).suffix.lower() in MARKDOWN and gone:
            new = drop_links(rel, new, gone)
        if new != text:
            changes.append(FileChange(rel, text, new, "references rewritten"))
    return changes


# --------------------------------------------------------------------------- verification


def check_no_references(check, app: Tree | str | os.PathLike[str], rules: Rules = DEFAULT_RULES) -> None:
    """Task 1.12's verification: a fresh scan of the whole repository finds nothing."""
    tree = Tree.of(app)
    files = tree.text_files()
    hits = scan(tree, rules)
    detail = (
        f"{len(files)} text files scanned"
        if not hits
        else "; ".join(f"{h.where} ({h.what})" for h in hits[:8])
        + (f" and {len(hits) - 8} more" if len(hits) > 8 else "")
    )
    check(
        "no Multipass / VM references left",
        not hits,
        detail,
        hint="edit these lines by hand, or give the notebook a `replacements` rule for them, and run again",
    )
    leftovers = [rel for rel, _ in files if is_multipass_file(rel)]
    check(
        "no files named after Multipass",
        not leftovers,
        ", ".join(leftovers) or "none",
        hint="delete them (they only served the VM)",
    )
    check_package_json_parses(check, tree)


def check_package_json_parses(check, tree: Tree) -> None:
    text = tree.read("package.json")
    try:
        packagejson.parse(text or "", "package.json")
    except packagejson.PackageJsonError as exc:
        check("package.json is still valid JSON", False, str(exc), hint="fix the file at the line shown")
    else:
        check("package.json is still valid JSON", True, "parses")


def check_vm_docs_clean(check, app: Tree | str | os.PathLike[str], rules: Rules = DEFAULT_RULES) -> None:
    """Task 1.6's verification: no VM pages, no references in the docs, no links to removed pages."""
    tree = Tree.of(app)
    files = dict(tree.text_files())
    pages = [rel for rel, text in files.items() if is_vm_page(rel, text, rules)]
    check(
        "no VM setup pages in the docs",
        not pages,
        ", ".join(pages) or f"none in {rules.docs_dir}/",
        hint="run task 1.6 without dry_run",
    )
    hits = scan(tree, rules, under=rules.docs_dir)
    check(
        f"no references in {rules.docs_dir}/",
        not hits,
        "; ".join(f"{h.where} ({h.what})" for h in hits[:8]) or "zero hits",
        hint="run task 1.6 again, or edit the lines shown by hand",
    )
    removed = removed_vm_pages(tree, rules) | {rel for rel in files if is_vm_page(rel, files[rel], rules)}
    dangling = [
        f"{rel}: {link}"
        for rel, text in files.items()
        if PurePosixPath(rel).suffix.lower() in MARKDOWN
        for link in links_to(rel, text, removed)
    ]
    check(
        "no links to the VM pages",
        not dangling,
        "; ".join(dangling[:6]) or "none",
        hint="remove these links (task 1.6 does it when run without dry_run)",
    )
    committed = [
        rel
        for rel in committed_files(tree)
        if _under(rel, rules.docs_dir) and not is_vm_page(rel, tree.committed(rel), rules)
    ]
    if committed:
        missing = [rel for rel in committed if not tree.exists(rel)]
        check(
            "the other docs pages are still there",
            not missing,
            ", ".join(missing) or f"{len(committed)} page(s) kept",
            hint="restore them with `git checkout -- <page>`: only VM pages are removed",
        )
