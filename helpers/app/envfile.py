"""``.env`` files, edited line by line so that every other key, comment, blank line and quote survives.

The parser understands what dotenv (Node and Python) reads: ``KEY=value``, ``export KEY=value``,
single/double/back-quoted values (double-quoted ones may span lines), inline comments after
unquoted values, comments and blank lines. Editing a key rewrites only its value; everything else
stays byte for byte, including CRLF line endings and a missing final newline.

Task 1.9 points ``.env.example`` at the local Docker services (:func:`plan_env_example`) and, when
the developer has no ``.env`` yet, creates it from the example (:func:`plan_env`); an existing
``.env`` holds the developer's own values and is left alone unless ``rewrite_env`` asks for its VM
addresses to be replaced.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import quote

from helpers.app import vmtext
from helpers.app.appfiles import FileChange, Tree, newline_of
from helpers.app.vmtext import DEFAULT_RULES, Rules
from helpers.core import steps
from helpers.core.steps import StepResult

EXAMPLE = ".env.example"
LOCAL = ".env"
DEFAULT_PASSWORD = "postgres"  # the compose file's documented local default
COOLIFY_COMMENT = "# Coolify dashboard: not used for local development any more (production: phase 2)"

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


def rewrite_values(text: str, rules: Rules = DEFAULT_RULES) -> str:
    """VM addresses in values → localhost; the Coolify dashboard on the VM → a placeholder. Nothing else."""
    entries = parse(text)
    for n, e in enumerate(entries):
        if e.kind == "assign":
            new = vmtext.rewrite_addresses(e.value, rules)
            if new != e.value:
                entries[n] = e.with_value(new)
    return render(entries)


def rewrite_references(text: str, rules: Rules = DEFAULT_RULES) -> str:
    """Task 1.12's rule for env files: values as :func:`rewrite_values`, comments by the prose rules.

    A comment about a ``multipass`` command goes; comments right above a ``COOLIFY*`` key that
    mention the VM become one line saying where Coolify lives now; ``MULTIPASS*`` keys go.
    """
    entries = parse(rewrite_values(text, rules))
    out: list[Entry] = []
    for n, e in enumerate(entries):
        if e.kind == "assign" and "MULTIPASS" in e.key.upper():
            continue
        if e.kind == "assign" and vmtext.has_reference(e.value, rules):
            e = e.with_value(vmtext.rewrite_prose(e.value, rules))
        if e.kind == "comment" and vmtext.has_reference(e.raw, rules):
            below = next((x for x in entries[n + 1 :] if x.kind != "comment"), None)
            if below is not None and below.kind == "assign" and "COOLIFY" in below.key.upper():
                if not any(x.raw.rstrip("\r\n") == COOLIFY_COMMENT for x in out[-3:]):
                    out.append(replace(e, raw=COOLIFY_COMMENT + e.newline))
                continue
            if vmtext.has_multipass_command(e.raw):
                continue
            body = e.raw[: len(e.raw) - len(e.newline)]
            new = vmtext.rewrite_prose(vmtext.rewrite_inline_code(body, rules), rules)
            e = replace(e, raw=new + e.newline)
        out.append(e)
    return render(out)


def vm_values(text: str | None, rules: Rules = DEFAULT_RULES) -> list[str]:
    """Keys whose value still points at the VM."""
    if not text:
        return []
    return [e.key for e in parse(text) if e.kind == "assign" and vmtext.has_reference(e.value, rules)]


# --------------------------------------------------------------------------- task 1.9


@dataclass(frozen=True)
class LocalServices:
    """Where the local services listen: the compose file's defaults, steered by the same variables."""

    user: str = "postgres"
    database: str = "app"
    postgres_port: int = 5432
    redis_port: int = 6379

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LocalServices:
        env = os.environ if environ is None else environ
        return cls(
            user=env.get("POSTGRES_USER") or "postgres",
            database=env.get("POSTGRES_DB") or "app",
            postgres_port=_port(env, "POSTGRES_PORT", 5432),
            redis_port=_port(env, "REDIS_PORT", 6379),
        )

    def database_url(self, password: str = DEFAULT_PASSWORD) -> str:
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(password, safe='')}@localhost:"
            f"{self.postgres_port}/{quote(self.database, safe='')}"
        )

    @property
    def redis_url(self) -> str:
        return f"redis://localhost:{self.redis_port}"

    def wanted(self) -> dict[str, str]:
        """What ``.env.example`` holds: the documented default password, not a real one: it is committed."""
        return {"DATABASE_URL": self.database_url(), "REDIS_URL": self.redis_url}


def _port(env: os._Environ[str] | dict[str, str], name: str, default: int) -> int:
    raw = env.get(name) or str(default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise EnvFileError(
            f"{name}={raw!r} is not a TCP port: set it to a number from 1 to 65535 (or unset it)"
        )
    return int(raw)


NEW_EXAMPLE = """# Local development. Copy this file to .env (git-ignored) and adjust it:
#   cp .env.example .env
# PostgreSQL and Redis run in Docker (docker-compose.yml): pnpm docker:up
"""


def plan_env_example(
    app: Tree | str | os.PathLike[str], services: LocalServices | None = None, rules: Rules = DEFAULT_RULES
) -> list[FileChange]:
    """``.env.example`` with localhost URLs (and no other VM address); created if the app has none."""
    tree = Tree.of(app)
    services = services or LocalServices.from_env()
    before = tree.read(EXAMPLE)
    text = NEW_EXAMPLE if before is None else before
    text = rewrite_values(text, rules)
    notes = []
    for key, value in services.wanted().items():
        count = len(all_values(text, key))
        if count > 1:
            notes.append(f"{key} appears {count} times: every occurrence set")
        text = set_key(text, key, value)
    why = "DATABASE_URL and REDIS_URL point at the local Docker services"
    return [FileChange(EXAMPLE, before, text, "; ".join([why, *notes]))]


def plan_env(
    app: Tree | str | os.PathLike[str],
    example: str,
    services: LocalServices | None = None,
    create_env: bool = True,
    rewrite_env: bool = False,
    password: str | None = None,
    rules: Rules = DEFAULT_RULES,
) -> tuple[list[FileChange], list[StepResult]]:
    """The developer's ``.env``: created from ``example`` when absent (``create_env``), otherwise left alone.

    ``password``: the local PostgreSQL password when it is not the documented default (goes into
    ``.env`` only, which git ignores; never into ``.env.example``). ``rewrite_env`` replaces the VM
    addresses in an existing ``.env`` and nothing else. Diffs of ``.env`` are never shown.
    """
    tree = Tree.of(app)
    services = services or LocalServices.from_env()
    current = tree.read(LOCAL)
    if current is None:
        if not create_env:
            return [], [
                steps.skipped(
                    f"create {LOCAL}", "create_env=False: run `cp .env.example .env` yourself before task 1.5"
                )
            ]
        text = rewrite_references(example, rules)  # the same, whether task 1.12 ran before or not
        if password and password != DEFAULT_PASSWORD:
            text = set_key(text, "DATABASE_URL", services.database_url(password))
        return [FileChange(LOCAL, None, text, "created from .env.example", show_diff=False)], []
    stale = vm_values(current, rules)
    if rewrite_env:
        new = rewrite_values(current, rules)
        why = f"VM addresses replaced in {', '.join(stale)}" if stale else "no VM address in it"
        return [FileChange(LOCAL, current, new, why, show_diff=False)], []
    if stale:
        return [], [
            steps.skipped(
                f"update {LOCAL}",
                f"left as is (it holds your values), but {', '.join(stale)} still point(s) at the VM: "
                "set rewrite_env=True or edit .env by hand",
            )
        ]
    return [], [
        steps.ok(f"keep {LOCAL}", "exists and points at no VM address; left as is (it holds your values)")
    ]


def plan(
    app: Tree | str | os.PathLike[str],
    services: LocalServices | None = None,
    create_env: bool = True,
    rewrite_env: bool = False,
    password: str | None = None,
    rules: Rules = DEFAULT_RULES,
) -> tuple[list[FileChange], list[StepResult]]:
    """Task 1.9's whole plan: :func:`plan_env_example`, then :func:`plan_env` from its result."""
    services = services or LocalServices.from_env()
    changes = plan_env_example(app, services, rules)
    local, notes = plan_env(app, changes[0].after or "", services, create_env, rewrite_env, password, rules)
    return changes + local, notes


def show_services(services: LocalServices) -> None:
    from helpers.core.display import show_table
    from helpers.core.secrets import scrub

    rows = [(k, scrub(v, values=[])) for k, v in services.wanted().items()]
    show_table(("key", "value in .env.example"), rows, title="The local services")


def check_env_example(
    check,
    app: Tree | str | os.PathLike[str],
    services: LocalServices | None = None,
    rules: Rules = DEFAULT_RULES,
    require_env: bool = True,
) -> None:
    """Task 1.9's verification, from the files: localhost URLs, nothing lost, ``.env`` usable and ignored."""
    tree = Tree.of(app)
    services = services or LocalServices.from_env()
    text = tree.read(EXAMPLE)
    if not check(
        ".env.example exists", text is not None, tree.path(EXAMPLE), hint="run task 1.9 without dry_run"
    ):
        return
    for key, wanted in services.wanted().items():
        found = all_values(text, key)
        ok = bool(found) and all(v == wanted for v in found)
        from helpers.core.secrets import scrub

        check(
            f"{key} → {scrub(wanted, values=[])}",
            ok,
            ", ".join(scrub(v, values=[]) for v in found) or "missing",
            hint="run task 1.9 again (the POSTGRES_*/REDIS_PORT variables must match the compose file's)",
        )
    stale = vm_values(text, rules)
    check("no value points at the VM", not stale, ", ".join(stale) or "none", hint="run task 1.9 again")
    committed = tree.committed(EXAMPLE)
    if committed is not None:
        kept = [k for k in dict.fromkeys(keys(committed)) if "MULTIPASS" not in k.upper()]
        now = list(dict.fromkeys(keys(text)))
        missing = [k for k in kept if k not in now]
        in_order = [k for k in now if k in kept] == kept
        check(
            "every key of the committed .env.example is kept, in order",
            not missing and in_order,
            f"missing: {', '.join(missing)}" if missing else f"{len(kept)} keys",
            hint="restore the lost keys from `git show HEAD:.env.example`",
        )
        comments = [
            e.raw.strip()
            for e in parse(committed)
            if e.kind == "comment" and not vmtext.has_reference(e.raw, rules)
        ]
        lines = {line.strip() for line in text.splitlines()}
        lost = [c for c in comments if c not in lines]
        check(
            "every other comment is kept",
            not lost,
            f"lost: {lost[0]}" if lost else f"{len(comments)} comments",
            hint="restore them from `git show HEAD:.env.example`",
        )
    env = tree.read(LOCAL)
    if env is None:
        if require_env:
            check(
                ".env exists (task 1.5 reads it)",
                False,
                "missing",
                hint="run task 1.9 with create_env=True, or `cp .env.example .env`",
            )
        return
    stale = vm_values(env, rules)
    check(
        ".env points at no VM address",
        not stale,
        ", ".join(stale) or "none",
        hint="run task 1.9 with rewrite_env=True, or edit those keys in .env by hand",
    )
    ignored = tree.is_ignored(LOCAL)
    if ignored is not None:
        check(
            ".env is ignored by git (it holds secrets)",
            ignored,
            "ignored" if ignored else "NOT ignored",
            hint="add a line `.env` to .gitignore",
        )
