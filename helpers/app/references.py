"""Find and rewrite what the app repository still says about the Multipass VM (tasks 1.6, 1.10 to 1.12).

A line *speaks of the VM* (:func:`helpers.app.vmtext.speaks_of_vm`) when it names Multipass, the
VM, the VM's address or Coolify as the local setup. Each such line is rewritten only by a rule
whose result is a whole true sentence; where no rule is sure, the line is left as it is and listed
(:class:`~helpers.app.vmtext.Unsure`: ``file:line``, the text, a proposed replacement), the task's
verification fails with that list, and the person fixes the line by hand or accepts the proposal
with the ``accept`` parameter. The sure rules, by what the line is:

* **a section about the VM**: in README.md and CLAUDE.md the docker section of tasks 1.10/1.11
  replaces it (:mod:`helpers.app.appdocs`); in another page a short section pointing at the README's
  docker workflow and the troubleshooting guide does. A heading that asks *why* (a decision) is not
  a setup section: it is listed;
* **a VM page** under ``docs/`` (named or titled after the VM) is deleted, and so are the shell files
  and Makefiles only the VM scripts ran; a link to a deleted page points at the page that replaced it
  (the README's docker section, or the troubleshooting guide for a troubleshooting page), a list item
  that was only that link goes;
* **a table row or list item about a removed VM script** (``pnpm vm:up``, ``pnpm services``) goes,
  and so does a command line that runs one;
* **code**: ``multipass`` commands map to ``docker compose`` (start → ``up -d --wait``, exec ... psql
  → ``exec postgres psql``), other multipass command lines go;
* **prose**: :func:`~helpers.app.vmtext.sure_rewrite` (a code span's multipass command, "in the
  Multipass VM" → "in Docker", the VM's address → ``localhost``, the VM dropped from an enumeration),
  kept only when the result no longer speaks of the VM; a list item about nothing but the VM goes;
* **``package.json``**: the scripts that only manage the VM (the profile's ``vm`` kind, whatever they
  are called and however they reach ``multipass``) are removed;
* **env files**: :func:`helpers.app.envexample.rewrite_env`;
* **a decision record** (an ADR) is history: it is never deleted nor reworded. Its lines about the VM
  are listed, and accepting them marks the record superseded (after which it is not read as VM text).

Every rule fires only on text that still speaks of the VM, and its output does not, so the tasks
that share files can run in any order and a second run changes nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from helpers.app import appdocs, packagejson, profile
from helpers.app.appfiles import FileChange, Tree
from helpers.app.rewriting import (
    MARKDOWN,
    Context,
    is_decision_record,
    is_history,
    links_to,
    plan_markdown,
    rewrite_file,
)
from helpers.app.rewriting import _under as _under
from helpers.app.vmtext import DEFAULT_RULES, Rules, Unsure, find_in_text


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


# --------------------------------------------------------------------------- VM pages and links

_VM_NAME = re.compile(r"(?:^|[-_.])(?:multipass|vm|vms|virtual-machine)(?:[-_.]|$)", re.IGNORECASE)


def first_title(text: str) -> str:
    for line in text.splitlines():
        m = re.match(r"^#\s+(.+?)\s*#*\s*$", line)
        if m:
            return m.group(1)
    return ""


def is_vm_page(rel: str, text: str | None, rules: Rules = DEFAULT_RULES) -> bool:
    """A documentation page about the VM: under the docs folder, named or titled after it (a decision
    record is history and stays)."""
    path = PurePosixPath(rel)
    if not _under(rel, rules.docs_dir) or path.suffix.lower() not in MARKDOWN:
        return False
    if is_decision_record(rel, text):
        return False
    title = first_title(text or "")
    return (
        bool(_VM_NAME.search(path.stem))
        or bool(title and rules.vm_words().search(title))
        or ("multipass" in title.lower())
    )


def is_multipass_file(rel: str) -> bool:
    """A file named after Multipass (cloud-init for the VM, a multipass/ folder...): VM-only."""
    return "multipass" in rel.lower()


def replacement_of(rel: str, text: str | None) -> str:
    """The page that replaces a removed VM page: the troubleshooting guide for a troubleshooting page,
    else the README's docker section."""
    if re.search(r"troubleshoot|problem|faq", f"{PurePosixPath(rel).stem} {first_title(text or '')}", re.I):
        return appdocs.GUIDE
    return f"README.md#{appdocs.SECTION_ANCHOR}"


def committed_files(tree: Tree) -> list[str]:
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


def gone_pages(tree: Tree, rules: Rules = DEFAULT_RULES) -> dict[str, str]:
    """Every VM page (still there, or already removed) and the page that replaces it."""
    pages = {rel: text for rel, text in tree.text_files() if is_vm_page(rel, text, rules)}
    pages |= {rel: tree.committed(rel) for rel in removed_vm_pages(tree, rules)}
    return {rel: replacement_of(rel, text) for rel, text in pages.items()}


# --------------------------------------------------------------------------- what the rules know of the app


def rules_for(
    app: Tree | str | os.PathLike[str],
    vm_ip: str = "",
    extra_patterns: Sequence[str] = (),
    replacements: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    docs_dir: str = "docs",
    rev: str | None = None,
) -> Rules:
    """The notebook's parameters, plus what the app itself says about its VM: the non-local hosts its
    ``.env.example`` used (before the migration, and now) and the team's own word for the VM.
    ``rev``: the commit that is the app before phase 1 (default: its last commit)."""
    tree = Tree.of(app)
    now = profile.read(tree)
    if rev is None:
        before = profile.baseline(tree.root)
        old = [tree.committed(rel) or "" for rel in before.docs]
    else:
        revision = profile.Revision(tree.root, rev)
        before = profile.read(revision)
        old = [revision.read(rel) or "" for rel in before.docs]
    texts = [tree.read(rel) or "" for rel in now.docs] + old
    return Rules.from_params(
        vm_ip,
        extra_patterns,
        replacements,
        docs_dir,
        hosts=profile.vm_hosts(before) | profile.vm_hosts(now),
        aliases=_aliases(texts),
    )


def _aliases(texts: Sequence[str]) -> tuple[str, ...]:
    from helpers.app.vmtext import learn_aliases

    return learn_aliases(texts)


def context(
    app: Tree | str | os.PathLike[str],
    rules: Rules = DEFAULT_RULES,
    facts: appdocs.Facts | None = None,
    section_pattern: str | None = None,
) -> Context:
    tree = Tree.of(app)
    before, now = profile.baseline(tree.root), profile.read(tree)
    vm = profile.vm_scripts(before) + profile.vm_scripts(now)
    others = [s for s in now.all_scripts() if s not in vm]
    return Context(
        rules=rules,
        facts=facts or appdocs.Facts.of(tree),
        vm_scripts=frozenset({s.name for s in vm if not s.package} | {s.label for s in vm}),
        gone=gone_pages(tree, rules),
        vm_files=frozenset(profile.vm_files(before) | profile.vm_files(now)),
        scripts=frozenset({s.name for s in others if not s.package} | {s.label for s in others}),
        packages=frozenset(p.path for p in now.packages),
        section_pattern=section_pattern or None,
    )


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """The changes of a task, and the lines no rule is sure about (left as they are unless accepted)."""

    changes: list[FileChange]
    unsure: list[Unsure] = field(default_factory=list)
    accepted: list[Unsure] = field(default_factory=list)


def plan(
    app: Tree | str | os.PathLike[str],
    rules: Rules = DEFAULT_RULES,
    scope: str = "all",
    accept: Sequence[str] = (),
    ctx: Context | None = None,
) -> Plan:
    """The rewrite of ``scope``: ``"all"`` (task 1.12), ``"docs"`` (1.6) or one file (``"README.md"``).

    Both ``all`` and ``docs`` delete the VM pages and repoint the links to them in every Markdown file;
    ``docs`` rewrites the docs folder only, ``all`` every file, deletes the files named after Multipass
    and those only the VM scripts ran, and gives README.md and CLAUDE.md their docker section.
    """
    tree = Tree.of(app)
    ctx = ctx or context(tree, rules)
    rules = ctx.rules
    files = dict(tree.text_files())
    one = scope not in ("all", "docs")
    delete: dict[str, str] = {}
    if not one:
        delete |= {
            rel: "VM documentation page" for rel, text in files.items() if is_vm_page(rel, text, rules)
        }
    if scope == "all":
        delete |= {rel: "file for the Multipass VM only" for rel in files if is_multipass_file(rel)}
        delete |= {rel: "run only by the VM scripts" for rel in files if rel in ctx.vm_files}
    result = Plan([])
    for rel in sorted(files):
        text = files[rel]
        if rel == appdocs.GUIDE:
            continue  # the runbook's own guide (task 1.13), which may speak of WSL's VM
        if rel in delete:
            result.changes.append(FileChange(rel, text, None, f"{delete[rel]}: removed"))
            continue
        whole = scope == "all" or rel == scope or (scope == "docs" and _under(rel, rules.docs_dir))
        if whole:
            new, unsure, accepted = rewrite_file(rel, text, ctx, accept, sections=scope != "docs")
        elif PurePosixPath(rel).suffix.lower() in MARKDOWN and not one:
            new, unsure, accepted = plan_markdown(rel, text, ctx, accept, links_only=True)
        else:
            continue
        result.unsure += unsure
        result.accepted += accepted
        if new != text:
            why = "references rewritten" + (
                f"; {len(accepted)} accepted proposal(s) applied" if accepted else ""
            )
            result.changes.append(FileChange(rel, text, new, why))
    return result


def plan_cleanup(
    app: Tree | str | os.PathLike[str], rules: Rules = DEFAULT_RULES, scope: str = "all"
) -> list[FileChange]:
    """The changes of :func:`plan` alone."""
    return plan(app, rules, scope).changes


# --------------------------------------------------------------------------- verification


def show_unsure(unsure: Sequence[Unsure], accepted: Sequence[Unsure] = ()) -> None:
    """The lines no rule is sure about (``file:line``, the text, the proposal), and those accepted."""
    from helpers.core.display import show_table
    from helpers.core.secrets import scrub

    rows = [(u.where, scrub(u.text, values=[]), scrub(u.proposal, values=[])) for u in unsure]
    rows += [
        (u.where, scrub(u.text, values=[]), "accepted: " + scrub(u.proposal, values=[])) for u in accepted
    ]
    title = f"{len(unsure)} place(s) no rule is sure about (left as they are)"
    if accepted:
        title += f", {len(accepted)} changed as proposed (accepted)"
    show_table(("where", "text", "proposed"), rows or [("—", "none", "")], title=title)


ACCEPT_HINT = (
    "no rule is sure how to rewrite these lines, so they were left as they are: edit them by hand, or run "
    'the task again with accept = "file:line" (comma-separated, or a file, or "all") to take the proposals'
)


def check_unsure(check, unsure: Sequence[Unsure], shown: int = 8) -> None:
    """One row: every line about the VM was rewritten by a sure rule or accepted; else the list."""
    detail = "; ".join(
        f"{u.where} {u.text.splitlines()[0][:70]!r} → {u.proposal.splitlines()[0][:70]!r}"
        for u in unsure[:shown]
    )
    if len(unsure) > shown:
        detail += f"; and {len(unsure) - shown} more"
    check(
        "every line about the VM was rewritten by a sure rule, or accepted",
        not unsure,
        detail or "none left",
        hint=ACCEPT_HINT,
    )


def check_no_references(
    check, app: Tree | str | os.PathLike[str], rules: Rules = DEFAULT_RULES, unsure: Sequence[Unsure] = ()
) -> None:
    """Task 1.12's verification: a fresh scan of the whole repository finds no Multipass reference,
    apart from the lines listed as unsure and the decision records kept as history."""
    tree = Tree.of(app)
    files = tree.text_files()
    history = {rel for rel, text in files if is_history(rel, text)}
    listed = {(u.path, n) for u in unsure for n in range(u.line, u.last + 1)}
    hits = [h for h in scan(tree, rules) if h.path not in history and (h.path, h.line) not in listed]
    detail = (
        f"{len(files)} text files scanned"
        if not hits
        else "; ".join(f"{h.where} ({h.what})" for h in hits[:8])
        + (f" and {len(hits) - 8} more" if len(hits) > 8 else "")
    )
    check(
        "no Multipass / VM references left (but the lines listed as unsure)",
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


def check_vm_docs_clean(
    check, app: Tree | str | os.PathLike[str], rules: Rules = DEFAULT_RULES, unsure: Sequence[Unsure] = ()
) -> None:
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
    listed = {(u.path, n) for u in unsure for n in range(u.line, u.last + 1)}
    hits = [
        h
        for h in scan(tree, rules, under=rules.docs_dir)
        if (h.path, h.line) not in listed and not is_history(h.path, files.get(h.path))
    ]
    check(
        f"no references in {rules.docs_dir}/ (but the lines listed as unsure)",
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
        hint="point these links at the README's docker section (task 1.6 does it when run without dry_run)",
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


def in_scope(scope: str, rules: Rules = DEFAULT_RULES):
    """The files a task's scope covers, as a test on a path."""
    if scope == "all":
        return lambda rel: True
    if scope == "docs":
        return lambda rel: _under(rel, rules.docs_dir)
    return lambda rel: rel == scope
