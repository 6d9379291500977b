"""Package-manager command lines, read as the shell and pnpm/npm/yarn read them.

Both the app profile (what does ``"dev": "pnpm --filter web dev & pnpm worker"`` run?) and the
checks of the app's docs (does ``pnpm db:migrate`` in the README name a real script?) need to take
``pnpm [options] [run] <name>`` apart. This module does it once:

* :func:`simple_commands` splits a shell line at ``&&``, ``||``, ``;``, ``|``, ``&`` and parentheses,
  keeping quoted words whole; :func:`strip_wrappers` drops ``VAR=value``, ``cross-env``,
  ``dotenv -e .env --`` and the like;
* :func:`parse` reads one package-manager call into a :class:`Call`: the verb, the script it runs
  (``pnpm dev``, ``pnpm run dev``, ``npm test``), the packages it selects (``--filter``, ``-C``,
  ``--workspace``, ``yarn workspace``) and whether it runs in every package (``-r``);
* :func:`run_line` writes the command that runs a script, for any of the four managers.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

MANAGERS = ("pnpm", "npm", "yarn", "bun")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Commands of each package manager that are not scripts: `pnpm deploy` never runs a script called
# `deploy` (that needs `pnpm run deploy`). SCRIPT_VERBS are verbs that do run the script of that name.
PNPM_VERBS = _words(
    "add audit bin c ci config create dedupe deploy dlx doctor env exec fetch help i import init "
    "install install-test it licenses link list ln ls outdated pack patch patch-commit patch-remove "
    "prune publish rb rebuild recursive remove rm root run run-script self-update server setup start "
    "store t test uninstall unlink up update upgrade why x cat-file cat-index find-hash"
)
NPM_VERBS = _words(
    "access adduser audit bugs cache ci completion config dedupe deprecate diff dist-tag docs doctor "
    "edit exec explain explore find-dupes fund get help hook i init install install-ci-test "
    "install-test it link ll login logout ls org outdated owner pack ping pkg prefix profile prune "
    "publish query rebuild repo restart root run run-script rum urn sbom search set shrinkwrap star "
    "stars start stop team test t tst token uninstall unpublish unstar update up version view whoami x"
)
YARN_VERBS = _words(
    "add audit autoclean bin cache check config create dlx exec explain generate-lock-entry global "
    "help import info init install licenses link list login logout node outdated owner pack plugin "
    "policies publish rebuild remove run set tag team unlink unplug up upgrade upgrade-interactive "
    "version versions why workspace workspaces"
)
BUN_VERBS = _words("add build create exec i init install link pm remove run test upgrade x")
VERBS: dict[str, frozenset[str]] = {
    "pnpm": PNPM_VERBS,
    "npm": NPM_VERBS,
    "yarn": YARN_VERBS,
    "bun": BUN_VERBS,
}
SCRIPT_VERBS: dict[str, frozenset[str]] = {
    "pnpm": frozenset({"test", "t", "start"}),
    "npm": frozenset({"test", "t", "tst", "start", "stop", "restart"}),
    "yarn": frozenset(),
    "bun": frozenset(),
}
_ALIASES = {"t": "test", "tst": "test"}
RUN_VERBS = frozenset({"run", "run-script", "rum", "urn"})
EXEC_VERBS = frozenset({"exec", "dlx", "x"})

# Options that take a value, per manager; those that select packages; those that mean "every package".
_VALUE_FLAGS: dict[str, frozenset[str]] = {
    "pnpm": frozenset(
        {"--filter", "-F", "-C", "--dir", "--reporter", "--workspace-concurrency", "--loglevel"}
    ),
    "npm": frozenset({"-w", "--workspace", "--prefix", "--loglevel"}),
    "yarn": frozenset({"--cwd"}),
    "bun": frozenset({"--filter", "--cwd"}),
}
_SELECT_FLAGS = frozenset({"--filter", "-F", "-C", "--dir", "-w", "--workspace", "--prefix", "--cwd"})
_ALL_FLAGS = frozenset({"-r", "--recursive", "-ws", "--workspaces"})
_WRAPPERS = frozenset({"cross-env", "env", "sudo", "time", "nohup", "exec", "dotenv-flow"})
_OPERATORS = frozenset(";&|()")


@dataclass(frozen=True)
class Call:
    """One package-manager call.

    ``verb`` is the manager's own command (``install``, ``run``, ``exec``...) or None when the word
    after the options is a script name (``pnpm dev``); ``script`` is the script the call runs (None
    for ``pnpm install``); ``selectors`` are the package selectors given (``--filter web``, ``-C
    apps/web``), None when there are none; ``recursive`` is ``-r`` / ``--workspaces``; ``rest`` is
    what follows (the script's arguments, or what ``exec`` runs).
    """

    manager: str
    verb: str | None
    script: str | None
    selectors: tuple[str, ...] | None
    recursive: bool
    rest: tuple[str, ...]

    @property
    def explicit_run(self) -> bool:
        """``pnpm run x`` or ``npm test``: a missing script is an error, where ``pnpm x`` would run a
        binary named x instead."""
        runs = {_ALIASES.get(v, v) for v in SCRIPT_VERBS.get(self.manager, frozenset())}
        return self.verb in RUN_VERBS or (self.verb is None and self.script in runs)


def split_tokens(line: str) -> list[str]:
    """Shell words, quotes removed, with operators (``&&``, ``;``, ``|``...) as words of their own."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: whitespace words
        return line.split()


def simple_commands(line: str) -> Iterator[list[str]]:
    """The simple commands of a shell line, each as its words."""
    current: list[str] = []
    for token in split_tokens(line):
        if token and set(token) <= _OPERATORS:
            if current:
                yield current
            current = []
        elif token and set(token) <= set("<>&0123456789"):
            current.append(token)  # a redirection stays with its command
        else:
            current.append(token)
    if current:
        yield current


def strip_wrappers(tokens: list[str]) -> list[str]:
    """Drop what only sets up the environment: ``VAR=value``, ``cross-env``, ``dotenv -e .env --``..."""
    i = 0
    while i < len(tokens):
        base = PurePosixPath(tokens[i]).name
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[i]) or base in _WRAPPERS:
            i += 1
        elif base in ("dotenv", "dotenvx", "env-cmd"):
            rest = tokens[i + 1 :]
            if "--" in rest:
                i += rest.index("--") + 2
                continue
            i += 1
            if base == "dotenvx" and i < len(tokens) and tokens[i] == "run":
                i += 1
            while i < len(tokens) and tokens[i].startswith("-"):
                i += 2 if tokens[i] in ("-e", "-f", "-c", "--file", "--environment") else 1
        else:
            break
    return tokens[i:]


def program(tokens: list[str]) -> str:
    """The program's name as typed: ``pnpm``, ``multipass`` (path and ``.exe`` dropped), lower case."""
    if not tokens:
        return ""
    return PurePosixPath(tokens[0]).name.lower().removesuffix(".exe").removesuffix(".cmd")


def parse(tokens: list[str]) -> Call | None:
    """The package-manager call in ``tokens`` (wrappers already stripped), or None if it is none."""
    manager = program(tokens)
    if manager not in MANAGERS:
        return None
    args = tokens[1:]
    value_flags = _VALUE_FLAGS.get(manager, frozenset())
    selectors: list[str] | None = None
    recursive = False
    positional: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        in_options = not positional or (positional[0] in RUN_VERBS and len(positional) == 1)
        if a == "--" or not in_options:
            positional += args[i + 1 :] if a == "--" else args[i:]
            break
        if a.startswith("-"):
            flag, eq, value = a.partition("=")
            if flag in _ALL_FLAGS:
                recursive = True
            elif flag in value_flags:
                if not eq and i + 1 < len(args):
                    value = args[i + 1]
                    i += 1
                if flag in _SELECT_FLAGS:
                    selectors = [*(selectors or []), value]
            i += 1
            continue
        positional.append(a)
        i += 1
    if manager == "yarn" and positional[:1] == ["workspace"] and len(positional) >= 3:
        selectors, positional = [positional[1]], positional[2:]
    if manager == "yarn" and positional[:2] == ["workspaces", "foreach"]:
        recursive, positional = True, [p for p in positional[2:] if not p.startswith("-")]
    sel = tuple(selectors) if selectors is not None else None
    if not positional:
        return Call(manager, None, None, sel, recursive, ())
    verb = positional[0]
    if verb in RUN_VERBS:
        script = positional[1] if len(positional) > 1 else None
        return Call(manager, verb, script, sel, recursive, tuple(positional[2:]))
    if verb in EXEC_VERBS:
        return Call(manager, verb, None, sel, recursive, tuple(positional[1:]))
    if verb in SCRIPT_VERBS.get(manager, frozenset()):
        return Call(manager, None, _ALIASES.get(verb, verb), sel, recursive, tuple(positional[1:]))
    if verb in VERBS.get(manager, frozenset()) or manager == "npm":
        return Call(manager, verb, None, sel, recursive, tuple(positional[1:]))
    return Call(manager, None, verb, sel, recursive, tuple(positional[1:]))


def run_line(manager: str, script: str, package: str | None = None, path: str | None = None) -> str:
    """The command that runs ``script`` from the repository's root: ``pnpm dev``, ``pnpm run deploy``
    (a script named like a verb), ``pnpm --filter web dev`` (``package``: its name; ``path``: its
    folder, used when it has no name and by npm's ``--workspace``)."""
    verbs, runs = VERBS.get(manager, frozenset()), SCRIPT_VERBS.get(manager, frozenset())
    quoted = shlex.quote(script)
    # npm runs only test/start/stop/restart without `run`; pnpm and yarn run any non-verb name
    direct = script in runs if manager == "npm" else script not in verbs or script in runs
    if package is None and path is None:
        return f"{manager} {quoted}" if direct else f"{manager} run {quoted}"
    target = shlex.quote(package or f"./{path}")
    if manager == "pnpm":
        return f"pnpm --filter {target} {'' if direct else 'run '}{quoted}"
    if manager == "npm":
        return f"npm run {quoted} --workspace={shlex.quote(path or package or '')}"
    if manager == "yarn":
        return f"yarn workspace {target} run {quoted}"
    return f"{manager} run --filter {target} {quoted}"
