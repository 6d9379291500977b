"""The app's own documentation: the docker section of README.md / CLAUDE.md and the troubleshooting guide.

Every text here is rendered from the app's profile (:class:`Facts`): the commands it names are the
app's own (its package manager, its ``docker:*`` scripts, the script that migrates or pushes its
schema, the scripts that start its web app and worker: ``pnpm dev:web`` and ``pnpm dev:worker`` in
one app, ``pnpm dev`` for both in another), its database user and name, the keys its ``.env.example``
uses. Where the app has no script for a step, the text leaves the step out; it never invents one.
Templates (``templates/app/*.md``) hold ``{{name}}`` placeholders; a line whose placeholder has no
value is left out.

Tasks 1.10 and 1.11 replace the README's and CLAUDE.md's local-setup section (the one about the
Multipass VM) with the docker-compose workflow, keeping the rest of the file. The new section sits
between two HTML comments (invisible on GitHub), so later runs find it again and change nothing::

    <!-- docker-workflow:start (written by the Implementation 3 runbook, task 1.11) -->
    ## Local development with Docker
    ...
    <!-- docker-workflow:end -->

Without markers the section to replace is the first heading about the VM (``multipass``, ``VM``,
``virtual machine``; not a heading that asks *why*, which is about a decision, not the setup), else
the first about local development (``local development``, ``development environment``, ``getting
started``...); it runs to the next heading of the same or a higher level. The new section takes that
heading's level. A file with no such section gets it before its first section heading.

Task 1.13 writes ``docs/troubleshooting-docker.md`` from the template; its verification parses the
file and checks that each problem has a **Symptom**, a **Cause** and a **Fix**.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from helpers.app import envexample, envfile, pmcommand, profile, vmtext
from helpers.app.appfiles import FileChange, Tree, newline_of, unified_diff, with_newlines
from helpers.app.envexample import LocalServices
from helpers.core.steps import StepResult
from helpers.services import appenv

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
POINTER_TEMPLATE = "docs-docker-pointer.md"

RATIONALE = re.compile(r"^\s*(?:why\b|rationale|background|history|decision)", re.I)
SECTION_TITLE = "Local development with Docker"
SECTION_ANCHOR = "local-development-with-docker"


@dataclass(frozen=True)
class Facts:
    """What the generated texts say about this app, read from its profile and ``.env.example``."""

    manager: str = "pnpm"
    toolchain: str = "Node.js and pnpm (`corepack enable`)"
    docker: dict[str, str] = field(default_factory=dict)  # "up" -> "pnpm docker:up"
    schema: tuple[str, str] | None = None  # ("pnpm db:migrate", "applies the migrations")
    seed: str | None = None
    start: tuple[tuple[str, str], ...] = ()  # ("pnpm dev", "the web app and the worker")
    services: LocalServices = field(default_factory=LocalServices)
    host_keys: tuple[str, ...] = ("DATABASE_URL", "REDIS_URL")
    port_keys: tuple[str, ...] = ("DATABASE_URL", "REDIS_URL")
    env_lines: tuple[str, ...] = ()  # "DATABASE_URL=postgresql://...@localhost:5432/app", as the app has them

    @classmethod
    def of(
        cls, app: Tree | str | os.PathLike[str] | profile.Profile, services: LocalServices | None = None
    ) -> Facts:
        """The facts of the app (a path, a :class:`Tree` or a profile already read)."""
        if isinstance(app, profile.Profile):
            p, example = app, None
        else:
            tree = Tree.of(app)
            p = profile.read(tree)
            example = tree.read(p.env_file) if p.env_file else None
        services = services or LocalServices.for_app(p)
        manager = p.package_manager

        def run(script: str) -> str:
            return pmcommand.run_line(manager, script)

        docker = {verb: run(f"docker:{verb}") for verb in ("up", "ps", "logs", "down", "reset")}
        schema = None
        for kind, what in ((profile.MIGRATE, "applies the migrations"), (profile.PUSH, "pushes the schema")):
            pick = p.script_for(kind)
            if pick:
                schema = (pick.command or "", what)
                break
        seed = p.script_for(profile.SEED).command
        return cls(
            manager=manager,
            toolchain=_toolchain(p),
            docker=docker,
            schema=schema,
            seed=seed,
            start=_start_commands(p),
            services=services,
            host_keys=_keys_of(p, "host"),
            port_keys=tuple(k for k in _keys_of(p, "port") if k not in ("POSTGRES_PORT", "REDIS_PORT")),
            env_lines=_env_lines(example, services),
        )

    @classmethod
    def defaults(cls) -> Facts:
        """The runbook's own example: a pnpm app with ``dev``, ``worker`` and ``db:migrate`` scripts."""
        return cls(
            docker={verb: f"pnpm docker:{verb}" for verb in ("up", "ps", "logs", "down", "reset")},
            schema=("pnpm db:migrate", "applies the migrations"),
            start=(("pnpm dev", "the web app"), ("pnpm worker", "the worker")),
            host_keys=("DATABASE_URL", "REDIS_URL"),
            port_keys=("DATABASE_URL", "REDIS_URL"),
            env_lines=tuple(f"{k}={v}" for k, v in LocalServices().wanted().items()),
        )

    def commands(self) -> list[str]:
        """Every command the texts name."""
        found = [f"{self.manager} install", *self.docker.values(), *(c for c, _ in self.start)]
        found += [c for c in (self.schema[0] if self.schema else None, self.seed) if c]
        return found

    def values(self) -> dict[str, str | None]:
        """The templates' placeholders."""
        svc = self.services
        first = [
            (f"{self.manager} install", ""),
            ("cp .env.example .env", "the settings point at the services on localhost"),
            (self.docker["up"], "starts PostgreSQL and Redis and waits until both are healthy"),
        ]
        if self.schema:
            first.append(self.schema)
        if self.seed:
            first.append((self.seed, "fills the database with seed data"))
        for n, (command, what) in enumerate(self.start):
            first.append((command, what + (", in another terminal" if n else "")))
        width = max(len(c) for c, _ in first) + 2
        block = "\n".join(f"{c:<{width}}# {w}".rstrip() if w else c for c, w in first)
        steps = [c for c, _ in ([self.schema] if self.schema else []) + list(self.start)]
        port_note = "or set `POSTGRES_PORT` / `REDIS_PORT` in `.env`"
        if self.port_keys:
            port_note += " and the same ports in " + " / ".join(f"`{k}`" for k in self.port_keys)
        settings = [f"`{line}`" for line in self.env_lines] or ["the localhost settings of `.env.example`"]
        restart = [f"`{c}`" for c, _ in self.start] or ["the app"]
        return {
            "manager": self.manager,
            "install": f"{self.manager} install",
            "toolchain": self.toolchain,
            **{f"docker_{verb}": command for verb, command in self.docker.items()},
            "postgres_port": str(svc.postgres_port),
            "redis_port": str(svc.redis_port),
            "port_note": port_note,
            "port_fix": (
                " and use the same port in " + " / ".join(f"`{k}`" for k in self.port_keys)
                if self.port_keys
                else ""
            ),
            "first_start": block,
            "then_steps": f", then {_join(f'`{c}`' for c in steps)}" if steps else "",
            "host_keys": _join(f"`{k}`" for k in self.host_keys) or "The database and Redis settings",
            "db_user": svc.user,
            "db_name": svc.database,
            "redis_db": f"; Redis uses db {svc.redis_index}" if svc.redis_index else "",
            "schema_fix": (
                f"recreate the schema with `{self.schema[0]}`"
                + (f" (and `{self.seed}`)" if self.seed else "")
                if self.schema
                else "recreate the schema the way this project creates it (no script of it migrates)"
            ),
            "start_first": self.start[0][0] if self.start else f"{self.manager} install",
            "restart": _join(restart),
            "env_settings": _join(settings),
            "env_grep": "|".join(dict.fromkeys(line.split("=", 1)[0] for line in self.env_lines))
            or "DATABASE_URL|REDIS_URL",
            "readme_link": f"README.md#{SECTION_ANCHOR}",
            "guide_link": GUIDE,
        }


def facts_for(
    app: Tree | str | os.PathLike[str], identity: str = "app", postgres_port: int = 0, redis_port: int = 0
) -> Facts:
    """The facts of the app with the services the notebook's parameters choose (see
    :meth:`helpers.app.envexample.LocalServices.for_app`)."""
    tree = Tree.of(app)
    services = LocalServices.for_app(
        profile.read(tree), identity, int(postgres_port or 0), int(redis_port or 0)
    )
    return Facts.of(tree, services)


def _join(items: Any) -> str:
    items = list(items)
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + (items[-1] if items else "")


def _toolchain(p: profile.Profile) -> str:
    node = "Node.js"
    m = re.fullmatch(r"\s*>=?\s*v?(\d+(?:\.\d+)*)\s*", p.node)
    if m:
        node = f"Node.js {m.group(1)} or newer"
    elif re.fullmatch(r"\s*\^?~?v?\d+(?:\.\d+)*(?:\.x)?\s*", p.node):
        node = f"Node.js {p.node.strip().lstrip('^~v')}"
    major = p.manager_version.split(".", 1)[0]
    manager = f"{p.package_manager} {major}" if major else p.package_manager
    corepack = " (`corepack enable`)" if p.package_manager in ("pnpm", "yarn") else ""
    return f"{node} and {manager}{corepack}"


def _start_commands(p: profile.Profile) -> tuple[tuple[str, str], ...]:
    """The commands that start the web app and the worker (each once), and what each starts."""
    kinds = (profile.DEV_WEB, profile.DEV_WORKER)
    picks = {k: p.script_for(k) for k in kinds}
    commands, _ = p.commands_for(*kinds)
    out = []
    for command in commands:
        covered = {k for k, pick in picks.items() if pick.command == command}
        for pick in picks.values():
            if pick.command == command:
                covered |= set(pick.also) & set(kinds)
        what = {
            frozenset(kinds): "the web app and the worker",
            frozenset({profile.DEV_WEB}): "the web app",
            frozenset({profile.DEV_WORKER}): "the worker",
        }.get(frozenset(covered), "the app")
        out.append((command, what))
    return tuple(out)


def _keys_of(p: profile.Profile, part: str) -> tuple[str, ...]:
    found = []
    for ep in (p.database, p.redis):
        if ep is not None:
            key = ep.sources.get(part) or ep.url_key
            if key:
                found.append(key)
    return tuple(dict.fromkeys(found))


def _env_lines(example: str | None, services: LocalServices) -> tuple[str, ...]:
    """The app's PostgreSQL and Redis settings on localhost, as ``KEY=value`` lines (URLs expanded)."""
    if example is None:
        return tuple(f"{k}={v}" for k, v in services.wanted().items())
    local = envexample.point_at(example, services)
    env = appenv.environment_of(local)
    values = {e.key: e.value for e in envfile.parse(local) if e.kind == "assign"}
    expanded = {k: appenv.expand(v, values) for k, v in values.items()}
    lines = []
    for ep in (env.database, env.redis):
        if ep is None:
            continue
        if ep.url_key:
            lines.append(f"{ep.url_key}={expanded[ep.url_key]}")
        for part in ("host", "port", "database"):
            key = ep.sources.get(part)
            if key and key != ep.url_key and not ep.url_key:
                lines.append(f"{key}={expanded[key]}")
    return tuple(dict.fromkeys(lines))


def template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def fill(text: str, values: dict[str, str | None]) -> str:
    """``{{name}}`` replaced by its value; a line whose placeholder has no value (None) is left out."""
    out = []
    for line in text.split("\n"):
        names = _PLACEHOLDER.findall(line)
        missing = [n for n in names if n not in values]
        if missing:
            raise KeyError(f"template placeholder {missing[0]!r} has no value")
        if any(values[n] is None for n in names):
            continue
        out.append(_PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), line))
    return "\n".join(out)


def rendered(name: str, facts: Facts | None = None) -> str:
    """A template filled with the app's facts (the runbook's defaults without facts)."""
    return fill(template(name), (facts or Facts.defaults()).values())


def required(target: DocTarget, facts: Facts) -> dict[str, str]:
    """What the section must tell a developer of this app (the verification looks for each)."""
    found = {
        "Docker as the prerequisite": r"\bDocker\b",
        "cp .env.example .env": r"cp \.env\.example \.env",
        "link to docs/troubleshooting-docker.md": r"docs/troubleshooting-docker\.md",
    }
    commands = [facts.docker["up"], facts.docker["logs"], facts.docker["reset"]]
    commands += [c for c, _ in facts.start] + ([facts.schema[0]] if facts.schema else [])
    for command in commands:
        found[command] = re.escape(command) + r"(?![\w:-])"
    return found


def managed_block(target: DocTarget, level: int = 2, facts: Facts | None = None) -> str:
    """The section between its markers, with its headings moved to ``level`` (LF line endings)."""
    body = _shift_headings(rendered(target.template, facts).rstrip("\n"), level - 2)
    start = f"<!-- docker-workflow:start (written by the Implementation 3 runbook, task {target.task}) -->"
    return f"{start}\n{body}\n<!-- docker-workflow:end -->\n"


def pointer_block(source: str, level: int = 2, facts: Facts | None = None) -> str:
    """The short section that replaces a VM section in another page: where the Docker workflow is now."""
    values = (facts or Facts.defaults()).values()
    base = str(PurePosixPath(source).parent)
    for key in ("readme_link", "guide_link"):
        values[key] = relative_link(base, str(values[key]))
    body = fill(template(POINTER_TEMPLATE), values).rstrip("\n")
    return _shift_headings(body, level - 2) + "\n"


def relative_link(base: str, target: str) -> str:
    """``target`` (a repository path, maybe with ``#anchor``) as a link from a file in folder ``base``."""
    path, _, anchor = target.partition("#")
    rel = os.path.relpath(path, base if base not in ("", ".") else ".").replace(os.sep, "/")
    return rel + (f"#{anchor}" if anchor else "")


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


def find_section(
    lines: list[str], pattern: str | None = None, vm_heading: str = VM_HEADING
) -> tuple[int, int, int] | None:
    """(first line, line after the end, heading level) of the local-setup section, or None.

    The first heading about the VM wins (not one that asks *why*: that section is about a decision),
    else the first about local development; when its parent heading is about either too (``### Create
    the VM`` under ``## Local development``), the parent's whole section is taken.
    """
    heads = headings(lines)
    tiers = [pattern] if pattern else [vm_heading, LOCAL_HEADING]
    either = "|".join(f"(?:{t})" for t in tiers)
    for tier in tiers:
        hit = next(
            (
                h
                for h in heads
                if h.level >= 2 and re.search(tier, h.title, re.IGNORECASE) and not RATIONALE.search(h.title)
            ),
            None,
        )
        if hit is None:
            continue
        while True:
            parent = next((h for h in reversed(heads) if h.index < hit.index and h.level < hit.level), None)
            if parent is None or parent.level < 2 or not re.search(either, parent.title, re.IGNORECASE):
                break
            hit = parent
        return hit.index, section_end(lines, heads, hit), hit.level
    return None


def section_end(lines: list[str], heads: list[Heading], head: Heading) -> int:
    """The line after ``head``'s section (the blank lines before the next heading stay outside)."""
    end = next((h.index for h in heads if h.index > head.index and h.level <= head.level), len(lines))
    while end > head.index + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def vm_heading_pattern(rules: vmtext.Rules) -> str:
    """The headings about the VM, with the team's own names for it ("The dev box")."""
    return VM_HEADING + "".join(rf"|\b{re.escape(a)}\b" for a in rules.aliases)


def render(
    text: str,
    target: DocTarget,
    pattern: str | None = None,
    facts: Facts | None = None,
    rules: vmtext.Rules = vmtext.DEFAULT_RULES,
) -> str:
    """The file with the docker section in place (replacing the VM section, or inserted)."""
    nl = newline_of(text) if text else "\n"
    lines = text.splitlines(keepends=True)
    marked = find_markers(lines)
    if marked:
        start, end = marked
        level = next((h.level for h in headings(lines[start : end + 1])), 2)
        block = with_newlines(managed_block(target, level, facts), nl)
        return "".join(lines[:start]) + block + "".join(lines[end + 1 :])
    section = find_section(lines, pattern, vm_heading_pattern(rules))
    if section:
        start, end, level = section
        block = with_newlines(managed_block(target, level, facts), nl)
        return "".join(lines[:start]) + block + "".join(lines[end:])
    first = next((h for h in headings(lines) if h.level >= 2), None)
    block = with_newlines(managed_block(target, first.level if first else 2, facts), nl)
    if first is None:
        head = text if not text or text.endswith(("\n", "\r")) else text + nl
        sep = nl if head.strip() else ""
        return head + sep + block
    return "".join(lines[: first.index]) + block + nl + "".join(lines[first.index :])


def plan_section(
    app: Tree | str | os.PathLike[str],
    target: DocTarget,
    pattern: str | None = None,
    facts: Facts | None = None,
    rules: vmtext.Rules = vmtext.DEFAULT_RULES,
) -> list[FileChange]:
    tree = Tree.of(app)
    facts = facts or Facts.of(tree)
    before = tree.read(target.path)
    after = render(before or "", target, pattern, facts, rules)
    lines = (before or "").splitlines(keepends=True)
    section = find_section(lines, pattern, vm_heading_pattern(rules))
    if before is None:
        why = "created with the docker section"
    elif find_markers(lines):
        why = "docker section brought up to date" if after != before else "docker section up to date"
    elif section:
        why = f"section {lines[section[0]].strip()!r} replaced by the docker workflow"
    else:
        why = "no local-setup section found: docker section inserted before the first section"
    return [FileChange(target.path, before, after, why)]


def _block_text(text: str) -> str | None:
    lines = text.splitlines(keepends=True)
    marked = find_markers(lines)
    return "".join(lines[marked[0] : marked[1] + 1]) if marked else None


def check_section(
    check,
    app: Tree | str | os.PathLike[str],
    target: DocTarget,
    facts: Facts | None = None,
    rules: vmtext.Rules = vmtext.DEFAULT_RULES,
) -> None:
    """Tasks 1.10/1.11: the docker section is there and names the app's own commands; no VM section
    left; the rest kept."""
    tree = Tree.of(app)
    facts = facts or Facts.of(tree)
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
    wanted = required(target, facts)
    missing = [name for name, rx in wanted.items() if not re.search(rx, block)]
    check(
        "it covers the app's workflow: " + ", ".join(wanted),
        not missing,
        f"missing: {', '.join(missing)}" if missing else "all there",
        hint=f"run task {target.task} again to restore the section",
    )
    in_block = vmtext.find_in_text(block, rules)
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
        if not start <= h.index <= end
        and re.search(vm_heading_pattern(rules), h.title, re.IGNORECASE)
        and not RATIONALE.search(h.title)
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
    marked, section = find_markers(old_lines), find_section(old_lines, None, vm_heading_pattern(rules))
    span = (marked[0], marked[1] + 1) if marked else (section[0], section[1]) if section else (0, 0)
    kept = [h.title for h in headings(old_lines) if not span[0] <= h.index < span[1]]
    now = {h.title for h in headings(lines)}
    lost = [t for t in kept if t not in now and not vmtext.speaks_of_vm(t, rules)]
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
    "the services' ports in use": r"port.*\d+.*(?:in use|taken|allocated)",
    "data gone after down -v": r"down -v",
    "slow mounts under /mnt/c": r"/mnt/c",
    "disk full": r"disk full|no space",
    "images not pulling": r"images?.*(?:not )?pull",
    "container unhealthy": r"unhealthy",
    "the app's settings still on the VM": r"still points? at the (?:old )?VM|DATABASE_URL",
}


def plan_guide(
    app: Tree | str | os.PathLike[str], overwrite: bool = False, facts: Facts | None = None
) -> tuple[list[FileChange], list[StepResult]]:
    """Write the troubleshooting guide (rendered for this app); a different existing guide is kept
    unless ``overwrite``."""
    tree = Tree.of(app)
    before = tree.read(GUIDE)
    text = rendered(GUIDE_TEMPLATE, facts or Facts.of(tree))
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


def show_problems(facts: Facts | None = None) -> list[Problem]:
    """The runbook's guide as a table: each problem and the first line of its symptom."""
    from helpers.core.display import show_table

    guide = parse_guide(rendered(GUIDE_TEMPLATE, facts))
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
