"""What an app's ``package.json`` script does, found by following its command.

:class:`Classifier` gives each script its kinds (:data:`KINDS`): ``next dev`` starts the web app
for development, ``tsx watch src/worker/index.ts`` the worker, ``drizzle-kit migrate`` migrates, and
so on. A command is followed through what it runs: other scripts (``pnpm worker``, ``pnpm -r dev``,
``pnpm --filter web dev``, ``turbo dev``, ``concurrently``, ``run-p dev:*``), package binaries
(``pnpm drizzle-kit push``), shell files (``bash scripts/up.sh``) and ``make`` targets. A script that
reaches ``multipass`` by any of these ways is a VM script, whatever it is called.

When the command says nothing and the script is classified by its name only, the result is not
``sure`` and the reason is added to :attr:`Classifier.unclear`; so is a script that mixes the VM
with other work (``"dev": "multipass start vm && next dev"``).
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

from helpers.app import pmcommand

DEV_WEB = "dev_web"
DEV_WORKER = "dev_worker"
START_WEB = "start_web"
START_WORKER = "start_worker"
MIGRATE = "migrate"
PUSH = "push"
SEED = "seed"
TEST = "test"
BUILD = "build"
VM = "vm"
OTHER = "other"
KINDS: dict[str, str] = {
    DEV_WEB: "starts the web app for development",
    DEV_WORKER: "starts the worker for development",
    START_WEB: "starts the built web app (production)",
    START_WORKER: "starts the built worker (production)",
    MIGRATE: "applies the database migrations",
    PUSH: "pushes the schema to the database without migrations",
    SEED: "fills the database with seed data",
    TEST: "runs tests",
    BUILD: "builds the app",
    VM: "manages the Multipass VM (the old local setup)",
    OTHER: "anything else",
}
PROCESS_KINDS = (DEV_WEB, DEV_WORKER, START_WEB, START_WORKER)

_SHELLS = frozenset({"bash", "sh", "zsh", "dash"})
_RUNNERS = frozenset(
    {"tsx", "ts-node", "ts-node-dev", "ts-node-esm", "node", "nodemon", "bun", "deno", "esno", "vite-node"}
)
_WEB_DEV = {
    "next": ("dev",),
    "vite": ("", "dev", "serve"),
    "nuxt": ("dev",),
    "nuxi": ("dev",),
    "astro": ("dev",),
    "remix": ("dev",),
    "react-router": ("dev",),
    "react-scripts": ("start",),
}
_WEB_START = {"next": ("start",), "vite": ("preview",), "nuxt": ("start", "preview"), "astro": ("preview",)}
_BUILDERS = frozenset(
    {"tsup", "esbuild", "rollup", "webpack", "swc", "parcel", "unbuild", "tsdown", "rspack"}
)
_TESTERS = frozenset({"vitest", "jest", "mocha", "ava", "tap", "uvu"})
_MIGRATORS = frozenset({"knex", "typeorm", "sequelize", "node-pg-migrate", "kysely", "kysely-ctl", "umzug"})
_WORKER_WORDS = re.compile(r"worker|queue|jobs?\b|consumer|processor|bull", re.I)
_WEB_WORDS = re.compile(r"(?:^|[/_.-])(?:web|frontend|site|www|server|app)(?:$|[/_.-])", re.I)
_MULTIPASS = re.compile(r"\bmultipass\b", re.I)
# Names that say what a script is when its command does not (in the order they are tried).
_BY_NAME = (
    (r"^(?:db:)?migrat", MIGRATE),
    (r"^(?:db:)?push\b", PUSH),
    (r"seed", SEED),
    (r"^test(?::|$)", TEST),
    (r"^build(?::|$)", BUILD),
)


class Workspace(Protocol):
    """What the classifier reads: the scripts of each package and the repository's files."""

    package_names: dict[str, str]  # workspace folder -> its package.json "name"

    def scripts_of(self, folder: str) -> dict[str, str]: ...  # "" is the root

    def read(self, rel: str) -> str | None: ...


@dataclass(frozen=True)
class Classified:
    kinds: tuple[str, ...]
    why: str
    sure: bool = True  # False: classified by its name only
    files: tuple[str, ...] = ()  # the shell files and Makefiles it runs


@dataclass
class _Facts:
    kinds: set[str] = field(default_factory=set)
    why: list[str] = field(default_factory=list)
    files: set[str] = field(default_factory=set)

    def add(self, kind: str, why: str) -> _Facts:
        self.kinds.add(kind)
        if why and why not in self.why:
            self.why.append(why)
        return self

    def merge(self, other: _Facts, why: str | None = None) -> _Facts:
        self.kinds |= other.kinds
        self.files |= other.files
        for w in [why] if why is not None else other.why:
            if w and w not in self.why:
                self.why.append(w)
        return self


def label(package: str, name: str) -> str:
    return f"{package}:{name}" if package else name


def package_role(path: str, name: str) -> str:
    """``worker`` or ``web`` when a workspace package's folder or name says so, else ``""``."""
    if not path:
        return ""
    if _WORKER_WORDS.search(f"{path} {name}"):
        return "worker"
    if _WEB_WORDS.search("/" + PurePosixPath(path).name + "/") or re.search(r"(?:^|[/-])(?:web|app)$", name):
        return "web"
    return ""


class Classifier:
    """Classifies scripts of a workspace, memoised per (package, script)."""

    def __init__(self, workspace: Workspace):
        self.ws = workspace
        self.done: dict[tuple[str, str], _Facts] = {}
        self.active: set[tuple[str, str]] = set()
        self.unsure: set[tuple[str, str]] = set()
        self.unclear: list[str] = []

    def classify(self, package: str, name: str) -> Classified:
        facts = self.facts(package, name)
        kinds = tuple(k for k in KINDS if k in facts.kinds) or (OTHER,)
        others = [k for k in kinds if k not in (VM, OTHER)]
        if VM in kinds and others:
            self._unclear(
                f"script `{label(package, name)}` mixes the VM with other work ({', '.join(others)}): "
                "the VM part must go and the rest stay"
            )
        return Classified(
            kinds, "; ".join(facts.why), (package, name) not in self.unsure, tuple(sorted(facts.files))
        )

    def _unclear(self, text: str) -> None:
        if text not in self.unclear:
            self.unclear.append(text)

    def facts(self, package: str, name: str) -> _Facts:
        key = (package, name)
        if key in self.done:
            return self.done[key]
        if key in self.active:  # a cycle: nothing more to learn
            return _Facts()
        self.active.add(key)
        command = self.ws.scripts_of(package).get(name, "")
        facts = self.line(command, package, name, 0)
        if not facts.kinds - {OTHER}:
            facts.merge(self.by_name(package, name, command))
        if not facts.kinds:
            facts.add(OTHER, _short(command))
        self.active.discard(key)
        self.done[key] = facts
        return facts

    # ---- by name, when the command told nothing

    def by_name(self, package: str, name: str, command: str) -> _Facts:
        facts = _Facts()
        base = name.lower()
        role = package_role(package, self.ws.package_names.get(package, ""))
        where = f"`{label(package, name)}` (`{_short(command)}`)"
        for rx, kind in _BY_NAME:
            if re.search(rx, base):
                self.unsure.add((package, name))
                self._unclear(f"script {where} taken for {kind} by its name only")
                return facts.add(kind, "by its name")
        if "worker" in base or (base == "dev" and role == "worker"):
            kind = START_WORKER if re.search(r"start|prod", base) else DEV_WORKER
            self.unsure.add((package, name))
            self._unclear(f"script {where} taken for the worker by its name only")
            return facts.add(kind, "by its name")
        if re.fullmatch(r"dev(?::web)?|web(?::dev)?", base):
            self.unsure.add((package, name))
            self._unclear(
                f"script {where} taken for the web app by its name only; it may start the worker too"
            )
            return facts.add(DEV_WEB, "by its name")
        return facts

    # ---- commands

    def line(self, command: str, package: str, name: str, depth: int) -> _Facts:
        facts = _Facts()
        if depth > 6:
            return facts
        for tokens in pmcommand.simple_commands(command):
            facts.merge(self.simple(tokens, package, name, depth))
        return facts

    def simple(self, tokens: list[str], package: str, name: str, depth: int) -> _Facts:
        facts = _Facts()
        tokens = pmcommand.strip_wrappers(tokens)
        prog = pmcommand.program(tokens)
        if not prog:
            return facts
        args = tokens[1:]
        words = [a for a in args if not a.startswith("-")]
        first = words[0] if words else ""
        if prog == "multipass":
            return facts.add(VM, f"multipass {first}".strip())
        if _MULTIPASS.search(" ".join(tokens)):
            return facts.add(VM, "calls multipass")
        if prog in pmcommand.MANAGERS:
            return self.manager(tokens, package, depth)
        if prog in ("npx", "pnpx", "bunx"):
            return self.line(shlex.join(_drop_flags(args)), package, name, depth + 1)
        if prog in ("turbo", "nx"):
            return self.turbo(args)
        if prog == "concurrently":
            for sub in _concurrently_commands(args):
                if re.match(r"^(?:pnpm|npm|yarn|bun):", sub):
                    facts.merge(self.matching(sub.split(":", 1)[1], package))
                else:
                    facts.merge(self.line(sub, package, name, depth + 1))
            return facts
        if prog in ("npm-run-all", "npm-run-all2", "run-p", "run-s"):
            for pattern in words:
                facts.merge(self.matching(pattern, package))
            return facts
        if prog == "make":
            return self.make(first, package, name, depth)
        if prog in _SHELLS and first:
            return self.shell_file(first, package, name, depth)
        if _looks_like_file(tokens[0]):
            return self.shell_file(tokens[0], package, name, depth)
        return self.tool(prog, args, words, package)

    def tool(self, prog: str, args: list[str], words: list[str], package: str) -> _Facts:
        """A program the app's dependencies provide: next, tsx, drizzle-kit, prisma, vitest..."""
        facts = _Facts()
        first = words[0] if words else ""
        shown = f"{prog} {first}".strip()
        if prog in _WEB_DEV and (first in _WEB_DEV[prog] or (not first and "" in _WEB_DEV[prog])):
            return facts.add(DEV_WEB, shown)
        if prog in _WEB_START and first in _WEB_START[prog]:
            return facts.add(START_WEB, shown)
        if (prog in _WEB_DEV and first == "build") or prog in _BUILDERS:
            return facts.add(BUILD, shown)
        if prog == "tsc":
            if any(a.lower() == "--noemit" for a in args):
                return facts.add(OTHER, "tsc --noEmit (type check)")
            return facts.add(BUILD, "tsc")
        if prog == "drizzle-kit":
            verb = first.split(":", 1)[0]
            kind = {"migrate": MIGRATE, "up": MIGRATE, "push": PUSH}.get(verb, OTHER)
            return facts.add(kind, shown)
        if prog == "prisma":
            sub = " ".join(words[:2])
            if sub.startswith("migrate") and sub != "migrate diff":
                return facts.add(MIGRATE, f"prisma {sub}")
            kind = {"db push": PUSH, "db seed": SEED}.get(sub, OTHER)
            return facts.add(kind, f"prisma {sub}".strip())
        if prog in _MIGRATORS:
            joined = " ".join(words)
            if "seed" in joined:
                return facts.add(SEED, f"{prog} {joined}".strip())
            if re.search(r"migrat|\bup\b|latest", joined) or prog == "node-pg-migrate":
                return facts.add(MIGRATE, f"{prog} {joined}".strip())
            return facts.add(OTHER, f"{prog} {joined}".strip())
        if prog in _TESTERS or (prog, first) in (("playwright", "test"), ("cypress", "run")):
            return facts.add(TEST, shown)
        if prog == "node" and "--test" in args:
            return facts.add(TEST, "node --test")
        if prog in _RUNNERS:
            return self.program(prog, args, package)
        if prog in ("docker", "docker-compose"):
            return facts.add(OTHER, f"{prog} {' '.join(words[:2])}".strip())
        return facts

    def program(self, prog: str, args: list[str], package: str) -> _Facts:
        """``tsx watch src/worker/index.ts``, ``node dist/worker.js``: a process, a migration or a seed."""
        facts = _Facts()
        watch = (
            prog in ("nodemon", "ts-node-dev")
            or "watch" in args
            or any(a.startswith("--watch") for a in args)
        )
        files = [a for a in args if not a.startswith("-") and a != "watch" and re.search(r"[./]", a)]
        if not files:
            return facts
        target = files[0]
        built = bool(re.search(r"(?:^|/)(?:dist|build|out|\.next)/", target)) or (
            prog == "node" and target.endswith((".js", ".mjs", ".cjs")) and not watch
        )
        shown = f"{prog} {'watch ' if 'watch' in args else ''}{target}"
        role = package_role(package, self.ws.package_names.get(package, ""))
        if re.search(r"migrat", target, re.I):
            return facts.add(MIGRATE, shown)
        if re.search(r"seed", target, re.I):
            return facts.add(SEED, shown)
        if _WORKER_WORDS.search(target) or role == "worker":
            return facts.add(START_WORKER if built else DEV_WORKER, shown)
        if _WEB_WORDS.search(target) or role == "web":
            return facts.add(START_WEB if built else DEV_WEB, shown)
        return facts

    def manager(self, tokens: list[str], package: str, depth: int) -> _Facts:
        """``pnpm worker``, ``pnpm -r dev``, ``pnpm --filter web dev``, ``npm run x -w y``, ``pnpm exec``."""
        facts = _Facts()
        call = pmcommand.parse(tokens)
        if call is None:
            return facts
        if call.verb in pmcommand.EXEC_VERBS:
            return self.line(shlex.join(call.rest), package, "", depth + 1)
        if call.script is None:
            return facts
        shown = " ".join(tokens)
        if call.recursive:
            targets = [p for p in self.ws.package_names if call.script in self.ws.scripts_of(p)]
        elif call.selectors is not None:
            targets = [t for s in call.selectors if (t := self.resolve(s, package)) is not None]
            if not targets:
                self._unclear(f"`{shown}`: no workspace package matches {', '.join(call.selectors)}")
        else:
            targets = [package]
        for target in targets:
            if call.script in self.ws.scripts_of(target):
                sub = self.facts(target, call.script)
                first = f" ({sub.why[0]})" if sub.why else ""
                facts.merge(sub, f"runs `{label(target, call.script)}`{first}")
            elif not call.explicit_run and not call.recursive:
                facts.merge(self.line(shlex.join([call.script, *call.rest]), target, "", depth + 1))
            elif not call.recursive:
                where = f" in {target}" if target else ""
                self._unclear(f"`{shown}`: there is no script {call.script!r}{where}")
        return facts

    def resolve(self, selector: str, current: str) -> str | None:
        """The workspace folder a ``--filter`` / ``-C`` / ``--workspace`` selector names, or None."""
        sel = selector.strip("'\"")
        names = self.ws.package_names
        if sel.startswith(("./", "../", "{")) or ("/" in sel and not sel.startswith("@")):
            sel = sel.strip("{}")
            norm = os.path.normpath(str(PurePosixPath(current or ".") / sel)).replace(os.sep, "/")
            norm = "" if norm == "." else norm
            if norm == "" or norm in names:
                return norm
            matches = [p for p in names if fnmatch.fnmatch(p, norm)]
            return matches[0] if len(matches) == 1 else None
        sel = sel.rstrip(".").rstrip("^")  # `web...`, `web^...`: the package itself (and its deps)
        for path, name in names.items():
            if sel in (name, path) or (name and fnmatch.fnmatch(name, sel)) or name.split("/")[-1] == sel:
                return path
        return None

    def turbo(self, args: list[str]) -> _Facts:
        facts = _Facts()
        words = [a for a in args if not a.startswith("-")]
        filters = [a.split("=", 1)[1] for a in args if a.startswith("--filter=")]
        filters += [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--filter", "-F")]
        words = [w for w in words if w not in filters]
        if words[:1] == ["run"]:
            words = words[1:]
        tasks = [w for w in words if not re.search(r"[./]", w)]
        packages = list(self.ws.package_names)
        if filters:
            packages = [p for f in filters if (p := self.resolve(f, "")) is not None]
        for task in tasks:
            for p in packages:
                if task in self.ws.scripts_of(p):
                    facts.merge(self.facts(p, task), f"turbo runs `{label(p, task)}`")
        if tasks and not facts.kinds:
            self._unclear(f"`turbo {' '.join(args)}`: no workspace package has {', '.join(tasks)}")
        return facts

    def matching(self, pattern: str, package: str) -> _Facts:
        """``dev:*`` (npm-run-all, concurrently's ``pnpm:dev:*``): every matching script of the package."""
        facts = _Facts()
        for n in self.ws.scripts_of(package):
            if fnmatch.fnmatch(n, pattern):
                facts.merge(self.facts(package, n), f"runs `{label(package, n)}`")
        return facts

    def make(self, target: str, package: str, name: str, depth: int) -> _Facts:
        facts = _Facts()
        rel = _join(package, "Makefile")
        facts.files.add(rel)
        lines = make_recipe(self.ws.read(rel) or "", target)
        if lines is None:
            self._unclear(f"script `{label(package, name)}` runs make {target}: no such target in {rel}")
            return facts
        for line in lines:
            facts.merge(self.line(line, package, name, depth + 1))
        if facts.kinds:
            facts.why = [f"through make {target}: " + ", ".join(facts.why)]
        return facts

    def shell_file(self, path: str, package: str, name: str, depth: int) -> _Facts:
        facts = _Facts()
        rel = _join(package, path)
        text = self.ws.read(rel)
        if text is not None:
            facts.files.add(rel)
        if text is None:
            if depth == 0:
                self._unclear(f"script `{label(package, name)}` runs {rel}, which is not in the repository")
            return facts
        if _MULTIPASS.search(text):
            return facts.add(VM, f"runs {rel}, which calls multipass")
        for line in shell_lines(text):
            facts.merge(self.line(line, package, name, depth + 1))
        if facts.kinds:
            facts.why = [f"through {rel}: " + ", ".join(facts.why)]
        return facts


def _join(package: str, path: str) -> str:
    return os.path.normpath(str(PurePosixPath(package or ".") / path)).replace(os.sep, "/")


def _short(command: str) -> str:
    return command if len(command) <= 60 else command[:57] + "..."


def _looks_like_file(token: str) -> bool:
    return token.startswith(("./", "../", "scripts/", "bin/", "tools/")) or token.endswith((".sh", ".bash"))


def _drop_flags(args: list[str]) -> list[str]:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 1
    return args[i:]


def _concurrently_commands(args: list[str]) -> list[str]:
    """The commands ``concurrently`` starts (its options and their values dropped)."""
    value_flags = {"-n", "--names", "-c", "--prefix-colors", "-p", "--prefix", "-m", "--max-processes"}
    out = []
    i = 0
    while i < len(args):
        if args[i].startswith("-"):
            i += 2 if args[i] in value_flags else 1
            continue
        out.append(args[i])
        i += 1
    return out


def shell_lines(text: str) -> Iterable[str]:
    """The command lines of a shell file: comments, blank lines, ``set``/``echo``/control words dropped."""
    skip = re.compile(r"^(?:set|echo|printf|exit|return|fi|then|else|done|do|esac|local|readonly|trap)\b")
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or skip.match(line) or line.endswith(("() {", "(){")):
            continue
        yield re.sub(r"^(?:if|while|until|elif)\s+", "", line)


def make_recipe(text: str, target: str) -> list[str] | None:
    """The recipe lines of ``target`` (the first target when empty) in a Makefile, or None."""
    found: list[str] | None = None
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.%/-]+(?:[ \t]+[A-Za-z0-9_.%/-]+)*)[ \t]*::?(?!=)", line)
        if m and not line.startswith("\t"):
            if found is not None:
                break
            names = m.group(1).split()
            if (target and target in names) or (not target and not names[0].startswith(".")):
                found = []
            continue
        if found is not None and line.startswith("\t"):
            found.append(line.strip().lstrip("@-"))
    return found
