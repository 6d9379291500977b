"""The app's own documentation: the docker section of README.md / CLAUDE.md and the troubleshooting guide.

Tasks 1.10 and 1.11 replace the README's and CLAUDE.md's local-setup section (the one about the
Multipass VM) with the docker-compose workflow, keeping the rest of the file. The new section sits
between two HTML comments (invisible on GitHub), so later runs find it again and change nothing::

    <!-- docker-workflow:start (written by the Implementation 3 runbook, task 1.11) -->
    ## Local development with Docker
    ...
    <!-- docker-workflow:end -->

Without markers the section to replace is the first heading about the VM (``multipass``, ``VM``,
``virtual machine``), else the first about local development (``local development``, ``development
environment``, ``getting started``...); it runs to the next heading of the same or a higher level.
The new section takes that heading's level. A file with no such section gets it before its first
``##`` heading.

Task 1.13 writes ``docs/troubleshooting-docker.md`` from the template; its verification parses the
file and checks that each problem has a **Symptom**, a **Cause** and a **Fix**.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from helpers.app import vmtext
from helpers.app.appfiles import FileChange, Tree, newline_of, unified_diff, with_newlines
from helpers.core.steps import StepResult

TEMPLATES = Path(__file__).with_name("templates") / "app"
START = re.compile(r"^<!--\s*docker-workflow:start\b.*?-->[ \t]*$")
END = re.compile(r"^<!--\s*docker-workflow:end\s*-->[ \t]*$")
VM_HEADING = r"multipass|\bVMs?\b|virtual machine"
LOCAL_HEADING = (
    r"local (?:development|dev|setup|environment|services)|development (?:environment|setup)|"
    r"dev (?:environment|setup)|getting started|running locally|run locally"
)


@dataclass(frozen=True)
class DocTarget:
    path: str
    template: str
    task: str


README = DocTarget("README.md", "readme-docker-section.md", "1.11")
CLAUDE = DocTarget("CLAUDE.md", "claude-docker-section.md", "1.10")
TARGETS = {t.path: t for t in (README, CLAUDE)}

# What the section must tell a developer (the verification looks for each).
REQUIRED: dict[str, str] = {
    "Docker as the prerequisite": r"\bDocker\b",
    "cp .env.example .env": r"cp \.env\.example \.env",
    "pnpm docker:up": r"pnpm docker:up\b",
    "pnpm dev": r"pnpm dev\b",
    "pnpm worker": r"pnpm worker\b",
    "pnpm docker:logs": r"pnpm docker:logs\b",
    "pnpm docker:reset": r"pnpm docker:reset\b",
    "link to docs/troubleshooting-docker.md": r"docs/troubleshooting-docker\.md",
}


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def managed_block(target: DocTarget, level: int = 2) -> str:
    """The section between its markers, with its headings moved to ``level`` (LF line endings)."""
    body = _shift_headings(template(target.template).rstrip("\n"), level - 2)
    start = f"<!-- docker-workflow:start (written by the Implementation 3 runbook, task {target.task}) -->"
    return f"{start}\n{body}\n<!-- docker-workflow:end -->\n"


def _shift_headings(text: str, by: int) -> str:
    if not by:
        return text
    out, fence = [], None
    for line in text.split("\n"):
        m = re.match(r"^\s{0,3}(`{3,}|~{3,})", line)
        if m:
            fence = None if fence and m.group(1)[0] == fence else (fence or m.group(1)[0])
        h = re.match(r"^(#{1,6})(\s.*)$", line)
        if h and fence is None:
            line = "#" * max(1, min(6, len(h.group(1)) + by)) + h.group(2)
        out.append(line)
    return "\n".join(out)


@dataclass(frozen=True)
class Heading:
    index: int  # line index
    level: int
    title: str


def headings(lines: list[str]) -> list[Heading]:
    """ATX headings outside code blocks."""
    found, fence = [], None
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        m = re.match(r"^\s{0,3}(`{3,}|~{3,})", body)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if fence is None:
            h = re.match(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$", body)
            if h:
                found.append(Heading(i, len(h.group(1)), h.group(2)))
    return found


def find_markers(lines: list[str]) -> tuple[int, int] | None:
    """(start line, end line) of the managed section, or None."""
    start = next((i for i, x in enumerate(lines) if START.match(x.rstrip("\r\n"))), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if END.match(lines[i].rstrip("\r\n"))), None)
    return (start, end) if end is not None else None


def find_section(lines: list[str], pattern: str | None = None) -> tuple[int, int, int] | None:
    """(first line, line after the end, heading level) of the local-setup section, or None.

    The first heading about the VM wins, else the first about local development; when its parent
    heading is about either too (``### Create the VM`` under ``## Local development``), the parent's
    whole section is taken.
    """
    heads = headings(lines)
    tiers = [pattern] if pattern else [VM_HEADING, LOCAL_HEADING]
    either = "|".join(f"(?:{t})" for t in tiers)
    for tier in tiers:
        hit = next((h for h in heads if h.level >= 2 and re.search(tier, h.title, re.IGNORECASE)), None)
        if hit is None:
            continue
        while True:
            parent = next((h for h in reversed(heads) if h.index < hit.index and h.level < hit.level), None)
            if parent is None or parent.level < 2 or not re.search(either, parent.title, re.IGNORECASE):
                break
            hit = parent
        after = next((h.index for h in heads if h.index > hit.index and h.level <= hit.level), len(lines))
        end = after
        while end > hit.index + 1 and not lines[end - 1].strip():
            end -= 1  # keep the blank lines before the next heading
        return hit.index, end, hit.level
    return None


def render(text: str, target: DocTarget, pattern: str | None = None) -> str:
    """The file with the docker section in place (replacing the VM section, or inserted)."""
    nl = newline_of(text) if text else "\n"
    lines = text.splitlines(keepends=True)
    marked = find_markers(lines)
    if marked:
        start, end = marked
        level = next((h.level for h in headings(lines[start : end + 1])), 2)
        block = with_newlines(managed_block(target, level), nl)
        return "".join(lines[:start]) + block + "".join(lines[end + 1 :])
    section = find_section(lines, pattern)
    if section:
        start, end, level = section
        block = with_newlines(managed_block(target, level), nl)
        return "".join(lines[:start]) + block + "".join(lines[end:])
    block = with_newlines(managed_block(target, 2), nl)
    first = next((h.index for h in headings(lines) if h.level == 2), None)
    if first is None:
        head = text if not text or text.endswith(("\n", "\r")) else text + nl
        sep = nl if head.strip() else ""
        return head + sep + block
    return "".join(lines[:first]) + block + nl + "".join(lines[first:])


def plan_section(
    app: Tree | str | os.PathLike[str], target: DocTarget, pattern: str | None = None
) -> list[FileChange]:
    tree = Tree.of(app)
    before = tree.read(target.path)
    after = render(before or "", target, pattern)
    lines = (before or "").splitlines(keepends=True)
    if before is None:
        why = "created with the docker section"
    elif find_markers(lines):
        why = "docker section brought up to date" if after != before else "docker section up to date"
    elif find_section(lines, pattern):
        start, _, _ = find_section(lines, pattern)
        why = f"section {lines[start].strip()!r} replaced by the docker workflow"
    else:
        why = "no local-setup section found: docker section inserted before the first ## heading"
    return [FileChange(target.path, before, after, why)]


def _block_text(text: str) -> str | None:
    lines = text.splitlines(keepends=True)
    marked = find_markers(lines)
    return "".join(lines[marked[0] : marked[1] + 1]) if marked else None


def check_section(check, app: Tree | str | os.PathLike[str], target: DocTarget) -> None:
    """Tasks 1.10/1.11: the docker section is there and complete; no VM section left; the rest kept."""
    tree = Tree.of(app)
    text = tree.read(target.path)
    if not check(
        f"{target.path} exists",
        text is not None,
        tree.path(target.path),
        hint=f"run task {target.task} without dry_run",
    ):
        return
    block = _block_text(text)
    if not check(
        "the docker section is there (between its markers)",
        block is not None,
        "found" if block else "no <!-- docker-workflow:start --> ... end marker pair",
        hint=f"run task {target.task} without dry_run",
    ):
        return
    missing = [name for name, rx in REQUIRED.items() if not re.search(rx, block)]
    check(
        "it covers the workflow: " + ", ".join(REQUIRED),
        not missing,
        f"missing: {', '.join(missing)}" if missing else "all there",
        hint=f"run task {target.task} again to restore the section",
    )
    in_block = vmtext.find_in_text(block)
    check(
        "the docker section mentions no Multipass/VM",
        not in_block,
        "; ".join(line.strip() for _, line, _ in in_block[:3]) or "clean",
        hint=f"run task {target.task} again to restore the section",
    )
    lines = text.splitlines(keepends=True)
    start, end = find_markers(lines) or (0, 0)
    left = [
        h.title
        for h in headings(lines)
        if not start <= h.index <= end and re.search(VM_HEADING, h.title, re.IGNORECASE)
    ]
    check(
        "no section about the VM left",
        not left,
        ", ".join(left) or "none",
        hint=f"remove these sections by hand, or run task {target.task} with section_pattern matching them",
    )
    committed = tree.committed(target.path)
    if committed is None:
        return
    old_lines = committed.splitlines(keepends=True)
    marked, section = find_markers(old_lines), find_section(old_lines)
    span = (marked[0], marked[1] + 1) if marked else (section[0], section[1]) if section else (0, 0)
    kept = [h.title for h in headings(old_lines) if not span[0] <= h.index < span[1]]
    now = {h.title for h in headings(lines)}
    lost = [t for t in kept if t not in now and vmtext.rewrite_prose(t) not in now]
    check(
        "the rest of the file is kept (its other headings)",
        not lost,
        f"lost: {', '.join(lost)}" if lost else f"{len(kept)} headings",
        hint=f"restore the file from git (`git checkout -- {target.path}`) and run the task again",
    )


# --------------------------------------------------------------------------- task 1.13

GUIDE = "docs/troubleshooting-docker.md"
GUIDE_TEMPLATE = "troubleshooting-docker.md"
PARTS = ("Symptom", "Cause", "Fix")
# Problems the guide must cover: a name and a regex its section's heading must match.
TOPICS: dict[str, str] = {
    "engine not running": r"engine.*not running|daemon.*not running",
    "WSL integration off": r"WSL integration",
    "permission denied on the socket": r"permission denied.*docker\.sock",
    "port 5432/6379 in use": r"port.*(?:5432|6379).*(?:in use|taken|allocated)",
    "data gone after down -v": r"down -v",
    "slow mounts under /mnt/c": r"/mnt/c",
    "disk full": r"disk full|no space",
    "images not pulling": r"images?.*(?:not )?pull",
    "container unhealthy": r"unhealthy",
    "DATABASE_URL still on the VM": r"DATABASE_URL",
}


def plan_guide(
    app: Tree | str | os.PathLike[str], overwrite: bool = False
) -> tuple[list[FileChange], list[StepResult]]:
    """Write the troubleshooting guide; a different existing guide is kept unless ``overwrite``."""
    tree = Tree.of(app)
    before = tree.read(GUIDE)
    text = template(GUIDE_TEMPLATE)
    if before is not None:
        text = with_newlines(text, newline_of(before))
    if before is None or before == text or overwrite:
        why = {None: "written from the runbook's guide"}.get(before, "replaced (overwrite=True)")
        if before == text:
            why = "same as the runbook's guide"
        return [FileChange(GUIDE, before, text, why)], []
    return [], [
        StepResult(
            f"update {GUIDE}",
            "skipped",
            "the app already has a different guide; kept (its sections are verified below). "
            "Set overwrite=True to replace it with the runbook's; the diff shows what would change",
            unified_diff(before, text, GUIDE),
        )
    ]


@dataclass(frozen=True)
class Problem:
    title: str
    parts: dict[str, str]

    @property
    def missing(self) -> list[str]:
        return [p for p in PARTS if not self.parts.get(p, "").strip()]


def parse_guide(text: str) -> list[Problem]:
    """The guide's ``##`` sections, each with the text after its **Symptom**, **Cause** and **Fix** labels."""
    lines = text.splitlines()
    heads = [h for h in headings(lines) if h.level == 2]
    problems = []
    for n, h in enumerate(heads):
        end = heads[n + 1].index if n + 1 < len(heads) else len(lines)
        body = "\n".join(lines[h.index + 1 : end])
        parts: dict[str, str] = {}
        label_rx = re.compile(
            r"^\s*\*\*(Symptom|Cause|Fix)\*\*\s*:?\s*|^\s*\*\*(Symptom|Cause|Fix):\*\*\s*",
            re.MULTILINE | re.IGNORECASE,
        )
        found = list(label_rx.finditer(body))
        for i, m in enumerate(found):
            label = (m.group(1) or m.group(2)).capitalize()
            stop = found[i + 1].start() if i + 1 < len(found) else len(body)
            parts[label] = body[m.end() : stop].strip()
        problems.append(Problem(h.title, parts))
    return problems


def show_problems() -> list[Problem]:
    """The runbook's guide as a table: each problem and the first line of its symptom."""
    from helpers.core.display import show_table

    guide = parse_guide(template(GUIDE_TEMPLATE))
    rows = [(p.title, p.parts["Symptom"].splitlines()[0]) for p in guide]
    show_table(("problem", "symptom"), rows, title=f"The guide's {len(guide)} problems")
    return guide


def check_guide(check, app: Tree | str | os.PathLike[str]) -> None:
    """Task 1.13's verification: the guide parses into problems with all three parts, covering every topic."""
    tree = Tree.of(app)
    text = tree.read(GUIDE)
    if not check(f"{GUIDE} exists", text is not None, tree.path(GUIDE), hint="run task 1.13 without dry_run"):
        return
    problems = parse_guide(text)
    check(
        "it has problem sections (## headings)",
        problems,
        f"{len(problems)} sections",
        hint="each problem is a `## ` section",
    )
    incomplete = [f"{p.title} (no {', '.join(p.missing)})" for p in problems if p.missing]
    check(
        "every section has **Symptom**, **Cause** and **Fix**",
        problems and not incomplete,
        "; ".join(incomplete) or f"{len(problems)} complete sections",
        hint="add the missing parts, or set overwrite=True to take the runbook's guide",
    )
    for name, rx in TOPICS.items():
        match = next((p.title for p in problems if re.search(rx, p.title, re.IGNORECASE)), None)
        check(f"covers: {name}", match, match or "no section", hint="add a section for it (overwrite=True)")
    hits = vmtext.find_in_text(text)
    check(
        "mentions no Multipass/VM address",
        not hits,
        "; ".join(line.strip() for _, line, _ in hits[:3]) or "clean",
        hint="rewrite those lines",
    )
