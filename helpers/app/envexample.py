"""Task 1.9: ``.env.example`` and ``.env`` point at the local Docker services, and the app keeps its identity.

:class:`LocalServices` is where the app finds PostgreSQL and Redis on this machine and as whom: its own
database user, password and name and its Redis db index (or the runbook's, when chosen), its ports
(or those the person chose). :func:`point_at` changes only the parts that differ, where the app keeps
them; :func:`rewrite_env` rewrites the comments about the VM as whole lines and lists what no rule is
sure about. :func:`plan` is the task's plan; an existing ``.env`` holds the developer's own values and
is left alone unless ``rewrite_env`` asks for its VM addresses to be replaced.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from helpers.app import vmtext
from helpers.app.appfiles import FileChange, Tree
from helpers.app.envfile import (
    DEFAULT_PASSWORD,
    EXAMPLE,
    LOCAL,
    Entry,
    EnvFileError,
    edit_url,
    keys,
    parse,
    render,
    set_key,
)
from helpers.app.vmtext import DEFAULT_RULES, Rules
from helpers.core import steps
from helpers.core.steps import StepResult
from helpers.services.appenv import environment_of

# --------------------------------------------------------------------------- the local services


@dataclass(frozen=True)
class LocalServices:
    """Where the app finds PostgreSQL and Redis on this machine, and as whom.

    :meth:`for_app` keeps the app's own identity (database user, password and name, Redis db index)
    and its ports: the migration changes only the host, and a port the person chooses. The compose
    file's defaults (task 1.7), ``.env.example`` (1.9) and the troubleshooting guide (1.13) all come
    from it. :meth:`local` adds what this machine's compose actually uses (``POSTGRES_PORT`` and the
    other compose variables in the environment): what a new ``.env``, which is never committed, holds.
    """

    user: str = "postgres"
    database: str = "app"
    postgres_port: int = 5432
    redis_port: int = 6379
    password: str | None = DEFAULT_PASSWORD
    redis_index: int = 0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LocalServices:
        """The runbook's defaults, steered by the compose variables (``POSTGRES_USER``, ``POSTGRES_PORT``)."""
        return cls().local(environ)

    @classmethod
    def for_app(
        cls, app_profile: Any, identity: str = "app", postgres_port: int = 0, redis_port: int = 0
    ) -> LocalServices:
        """The app's identity (``identity="app"``) or the runbook's (``"runbook"``: postgres/app, db 0)."""
        if identity not in ("app", "runbook"):
            raise EnvFileError(f"identity must be 'app' or 'runbook', not {identity!r}")
        base = cls()
        db, rd = app_profile.database, app_profile.redis
        if identity == "app" and db is not None:
            base = replace(
                base,
                user=db.user or base.user,
                database=db.database or base.database,
                password=db.password if db.password is not None else (None if db.user else base.password),
                postgres_port=db.port or base.postgres_port,
            )
        if identity == "app" and rd is not None:
            base = replace(base, redis_index=rd.index, redis_port=rd.port or base.redis_port)
        for name, port in (("postgres_port", postgres_port), ("redis_port", redis_port)):
            if port:
                _check_port(name, str(port))
                base = replace(base, **{name: int(port)})
        return base

    def local(self, environ: dict[str, str] | None = None) -> LocalServices:
        """These services as this machine's compose runs them: its variables in the environment win."""
        env = os.environ if environ is None else environ
        return replace(
            self,
            user=env.get("POSTGRES_USER") or self.user,
            database=env.get("POSTGRES_DB") or self.database,
            postgres_port=_port(env, "POSTGRES_PORT", self.postgres_port),
            redis_port=_port(env, "REDIS_PORT", self.redis_port),
        )

    def database_url(self, password: str | None = None) -> str:
        secret = self.password if password is None else password
        auth = quote(self.user, safe="") + (f":{quote(secret, safe='')}" if secret else "")
        return f"postgresql://{auth}@localhost:{self.postgres_port}/{quote(self.database, safe='')}"

    @property
    def redis_url(self) -> str:
        tail = f"/{self.redis_index}" if self.redis_index else ""
        return f"redis://localhost:{self.redis_port}{tail}"

    def wanted(self) -> dict[str, str]:
        """The URLs a new ``.env.example`` gets (the documented local password: the file is committed)."""
        return {"DATABASE_URL": self.database_url(), "REDIS_URL": self.redis_url}

    def parts(self, service: str) -> dict[str, str]:
        """What the app's settings for ``service`` must say (the host is always ``localhost``)."""
        if service == "postgres":
            found = {"host": "localhost", "port": str(self.postgres_port), "user": self.user}
            found["database"] = self.database
            if self.password is not None:
                found["password"] = self.password
            return found
        return {"host": "localhost", "port": str(self.redis_port), "database": str(self.redis_index)}


def _check_port(name: str, raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise EnvFileError(
            f"{name}={raw!r} is not a TCP port: set it to a number from 1 to 65535 (or unset it)"
        )
    return int(raw)


def _port(env: os._Environ[str] | dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    return _check_port(name, raw) if raw else default


# --------------------------------------------------------------------------- the settings on localhost

_DEFAULT_PORTS = {"postgres": 5432, "redis": 6379}


def point_at(
    text: str, services: LocalServices, rules: Rules = DEFAULT_RULES, only_host: bool = False
) -> str:
    """The app's PostgreSQL and Redis settings set to ``services``, changing only what differs.

    Each part is changed where the app keeps it: inside its URL (``DATABASE_URL``), in a separate key
    (``REDIS_HOST``, ``REDIS_DB``) or in the key a URL takes it from (``${POSTGRES_HOST}``). For the
    app's own identity that is only the host (and a port the person chose). Other postgres:// and
    redis:// URLs on the VM's address get ``localhost`` too. Settings the app lacks are added as
    ``DATABASE_URL`` / ``REDIS_URL``. ``only_host``: the host and nothing else (a developer's ``.env``).
    """
    env = environment_of(text)
    for service, ep in (("postgres", env.database), ("redis", env.redis)):
        if ep is None and only_host:
            continue
        if ep is None:
            key = "DATABASE_URL" if service == "postgres" else "REDIS_URL"
            text = set_key(text, key, services.wanted()[key])
            continue
        current = {
            "host": ep.host or "",
            "port": str(ep.port or _DEFAULT_PORTS[service]),
            "user": ep.user,
            "password": ep.password,
            "database": ep.database if service == "postgres" else str(ep.index),
        }
        wanted = {"host": "localhost"} if only_host else services.parts(service)
        for part, value in wanted.items():
            if current.get(part) == value or (
                part == "host" and (ep.host or "").lower() in vmtext.LOCAL_HOSTS
            ):
                continue
            text = _set_part(text, ep, part, value)
    for key, ep in env.urls.items():  # a second URL of the same services on the VM (DIRECT_URL...)
        if ep.host and rules.address_rx().fullmatch(ep.host):
            text = _edit_key(text, key, lambda raw: edit_url(raw, {"host": "localhost"}))
    return text


def _set_part(text: str, ep: Any, part: str, value: str) -> str:
    key = ep.sources.get(part) or ep.url_key
    if key is None:
        return text
    if key == ep.url_key:
        return _edit_key(text, key, lambda raw: edit_url(raw, {part: value}))
    return set_key(text, key, value)


def _edit_key(text: str, key: str, fn: Any) -> str:
    entries = parse(text)
    for n, e in enumerate(entries):
        if e.kind == "assign" and e.key == key:
            new = fn(e.value)
            if new != e.value:
                entries[n] = e.with_value(new)
    return render(entries)


def rewrite_values(text: str, rules: Rules = DEFAULT_RULES) -> str:
    """VM addresses in values → localhost; the Coolify dashboard on the VM → a placeholder. Nothing else."""
    entries = parse(text)
    for n, e in enumerate(entries):
        if e.kind == "assign":
            new = vmtext.rewrite_addresses(e.value, rules)
            if new != e.value:
                entries[n] = e.with_value(new)
    return render(entries)


# --------------------------------------------------------------------------- comments and other values

_RULED = re.compile(r"^(?P<lead>#\s*)(?P<rule>([-=─━*~#])\3{2,})\s+.*?\s+(?P=rule)\3*\s*$")


def services_comment(manager: str = "pnpm") -> str:
    """The one line that replaces a comment about where the VM's services were."""
    from helpers.app import pmcommand

    up = pmcommand.run_line(manager, "docker:up")
    return f"# PostgreSQL and Redis run in Docker on this machine (docker-compose.yml): `{up}` starts them."


def _services_header(old: str) -> str:
    """A ruled header about the VM → ``# --- Services in Docker (docker-compose.yml) ---``, same width."""
    m = _RULED.match(old)
    if not m:
        return old
    rule = m.group("rule")
    head = f"{m.group('lead')}{rule} Services in Docker (docker-compose.yml) "
    return head + rule[0] * max(3, len(old) - len(head))


def rewrite_env(
    text: str,
    rules: Rules = DEFAULT_RULES,
    manager: str = "pnpm",
    gone: dict[str, str] | None = None,
    accept: tuple[str, ...] = (),
    path: str = EXAMPLE,
    vm_scripts: frozenset[str] = frozenset(),
) -> tuple[str, list[vmtext.Unsure], list[vmtext.Unsure]]:
    """The env file's comments and other values, by rules whose result is a whole true line.

    * a comment about the VM becomes one whole line: above a ``COOLIFY*`` key, :data:`COOLIFY_COMMENT`;
      in the header, or right above the app's PostgreSQL/Redis settings, :func:`services_comment`
      (a ruled header keeps its rule); further VM comments of the same group go;
    * a path to a removed page points at the page that replaced it (``gone``);
    * ``COOLIFY*`` values on the VM → the production placeholder; ``MULTIPASS*`` keys go;
    * any other line about the VM (a comment explaining another key, ``S3_ENDPOINT`` on the VM) is not
      sure: left as it is and returned as :class:`~helpers.app.vmtext.Unsure` with a proposal, or
      changed as proposed when ``accept`` names it.

    Returns the text, the lines still unsure, and the lines changed because they were accepted.
    """
    env = environment_of(text)
    endpoints = [ep for ep in (env.database, env.redis) if ep is not None]
    ours = {k for ep in endpoints for k in [ep.url_key, *ep.sources.values()] if k} | set(env.urls)
    host_keys = {ep.sources.get("host") or ep.url_key for ep in endpoints} | set(env.urls)
    entries = parse(text)
    starts, n = [], 0
    for e in entries:
        starts.append(n)
        n += e.raw.count("\n") or 1
    out: list[Entry] = []
    unsure: list[vmtext.Unsure] = []
    accepted: list[vmtext.Unsure] = []
    group_done: set[str] = set()

    def speaks(raw: str) -> str | None:
        return vmtext.speaks_of_vm(raw, rules) or _names_vm_script(raw, vm_scripts)

    previous_vm = False  # the comment above spoke of the VM (a sentence may go on in this one)

    for i, e in enumerate(entries):
        if e.kind != "comment":
            group_done.clear() if e.kind == "blank" else None
        if e.kind == "assign":
            if "MULTIPASS" in e.key.upper():
                continue
            if e.key in ours or not rules.address_rx().search(e.value):
                out.append(e)
                continue
            if "COOLIFY" in e.key.upper():
                out.append(e.with_value(vmtext.rewrite_addresses(e.value, rules)))
                continue
            proposal = e.with_value(vmtext.rewrite_addresses(e.value, rules, coolify=None))
            item = vmtext.Unsure(
                path,
                starts[i] + 1,
                e.raw.rstrip("\r\n"),
                proposal.raw.rstrip("\r\n") + "   (only if that service runs on this machine)",
                f"{e.key} points at the VM's address, and docker-compose.yml runs only PostgreSQL and Redis",
            )
            if item.accepted_by(accept):
                accepted.append(item)
                out.append(proposal)
            else:
                unsure.append(item)
                out.append(e)
            continue
        if e.kind != "comment":
            out.append(e)
            continue
        body = e.raw[: len(e.raw) - len(e.newline)]
        if gone:
            body = vmtext.repoint_paths(body, gone)
        what = speaks(body)
        if not what and previous_vm and _goes_on(entries[i - 1].raw, body):
            what = "the VM (a sentence that began on the line above)"
        previous_vm = bool(what)
        if not what:
            out.append(replace(e, raw=body + e.newline))
            continue
        below = next((x for x in entries[i + 1 :] if x.kind != "comment"), None)
        below = below if below is not None and below.kind == "assign" else None
        if below is not None and "COOLIFY" in below.key.upper():
            if "coolify" not in group_done:
                out.append(replace(e, raw=COOLIFY_COMMENT + e.newline))
                group_done.add("coolify")
            continue
        if below is None or below.key in host_keys:
            if _RULED.match(body):
                out.append(replace(e, raw=_services_header(body) + e.newline))
            elif "services" not in group_done:
                out.append(replace(e, raw=services_comment(manager) + e.newline))
                group_done.add("services")
            continue
        new = vmtext.proposed_rewrite(body, rules)
        clean = not speaks(new) and new.strip() not in ("#", "")
        item = vmtext.Unsure(
            path,
            starts[i] + 1,
            body,
            new if clean else "(remove the line)",
            f"a comment about {below.key} that speaks of {what}",
        )
        if item.accepted_by(accept):
            accepted.append(item)
            if clean:
                out.append(replace(e, raw=new + e.newline))
        else:
            unsure.append(item)
            out.append(e)
    return render(out), unsure, accepted


def _names_vm_script(line: str, vm_scripts: frozenset[str]) -> str | None:
    """A removed VM script named in a code span (``pnpm vm:ip``), as what the line speaks of."""
    from helpers.app import pmcommand

    for span in re.findall(r"`([^`\n]+)`", line):
        for tokens in pmcommand.simple_commands(span):
            call = pmcommand.parse(pmcommand.strip_wrappers(tokens))
            name = call and (call.script or call.verb)
            if name and name in vm_scripts:
                return f"the removed VM script {name!r}"
    return None


def _goes_on(above: str, line: str) -> bool:
    """``line`` (a comment) continues the sentence of the comment ``above``."""
    prev = above.strip().lstrip("#").strip()
    text = line.strip().lstrip("#").strip()
    return bool(prev) and bool(text) and (not re.search(r"[.!?:)]$", prev) or text[:1].islower())


def vm_values(text: str | None, rules: Rules = DEFAULT_RULES) -> list[str]:
    """Keys of the app's PostgreSQL and Redis settings whose value still points at the VM."""
    if not text:
        return []
    env = environment_of(text)
    ours = {k for ep in (env.database, env.redis) if ep for k in [ep.url_key, *ep.sources.values()] if k}
    ours |= set(env.urls)
    return [
        e.key
        for e in parse(text)
        if e.kind == "assign"
        and e.key in ours
        and (vmtext.has_reference(e.value, rules) or _on_vm(e.value, rules))
    ]


def _on_vm(value: str, rules: Rules) -> bool:
    return bool(rules.address_rx().search(value))


# --------------------------------------------------------------------------- task 1.9

COOLIFY_COMMENT = "# Coolify dashboard of the production server (Coolify is not part of local development)"
NEW_EXAMPLE = """# Local development. Copy this file to .env (git-ignored) and adjust it:
#   cp .env.example .env
# PostgreSQL and Redis run in Docker (docker-compose.yml): pnpm docker:up
"""


def plan_env_example(
    app: Tree | str | os.PathLike[str],
    services: LocalServices | None = None,
    rules: Rules = DEFAULT_RULES,
    manager: str = "pnpm",
    gone: dict[str, str] | None = None,
    accept: tuple[str, ...] = (),
    vm_scripts: frozenset[str] = frozenset(),
) -> tuple[list[FileChange], list[vmtext.Unsure], list[vmtext.Unsure]]:
    """``.env.example`` pointed at the local services (only the host changes; created if the app has
    none), its VM comments rewritten as whole lines, and the lines no rule is sure about."""
    tree = Tree.of(app)
    services = services or LocalServices()
    before = tree.read(EXAMPLE)
    text = NEW_EXAMPLE if before is None else before
    text = point_at(text, services, rules)
    text, unsure, accepted = rewrite_env(text, rules, manager, gone, accept, EXAMPLE, vm_scripts)
    why = "PostgreSQL and Redis settings point at localhost (only the host changed)"
    if before is None:
        why = "created: DATABASE_URL and REDIS_URL point at the local Docker services"
    if accepted:
        why += f"; {len(accepted)} line(s) changed as proposed (accepted)"
    return [FileChange(EXAMPLE, before, text, why)], unsure, accepted


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

    A new ``.env`` points at the services as this machine's compose runs them
    (:meth:`LocalServices.local`: the ports and user in the environment), with ``password`` when it
    is not the documented default (``.env`` is git-ignored; never ``.env.example``). ``rewrite_env``
    replaces the VM addresses in an existing ``.env`` and nothing else. Diffs of ``.env`` are never shown.
    """
    tree = Tree.of(app)
    services = services or LocalServices()
    current = tree.read(LOCAL)
    if current is None:
        if not create_env:
            return [], [
                steps.skipped(
                    f"create {LOCAL}", "create_env=False: run `cp .env.example .env` yourself before task 1.5"
                )
            ]
        local = services.local()
        if password and password != DEFAULT_PASSWORD:
            local = replace(local, password=password)
        text = point_at(example, local, rules)
        return [FileChange(LOCAL, None, text, "created from .env.example", show_diff=False)], []
    stale = vm_values(current, rules)
    if rewrite_env:
        new = point_at(current, services, rules, only_host=True) if stale else current
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
    manager: str = "pnpm",
    gone: dict[str, str] | None = None,
    accept: tuple[str, ...] = (),
    vm_scripts: frozenset[str] = frozenset(),
) -> tuple[list[FileChange], list[StepResult], list[vmtext.Unsure]]:
    """Task 1.9's whole plan: :func:`plan_env_example`, then :func:`plan_env` from its result.

    Returns the changes, extra step results and the lines no rule is sure about (left as they are).
    """
    services = services or LocalServices()
    changes, unsure, _ = plan_env_example(app, services, rules, manager, gone, accept, vm_scripts)
    local, notes = plan_env(app, changes[0].after or "", services, create_env, rewrite_env, password, rules)
    return changes + local, notes, unsure


def show_services(services: LocalServices) -> None:
    from helpers.core.display import show_table

    rows = [
        ("PostgreSQL", f"user {services.user}, database {services.database}, port {services.postgres_port}"),
        ("Redis", f"db {services.redis_index}, port {services.redis_port}"),
    ]
    show_table(("service", "the app's settings on localhost"), rows, title="The local services")


def check_env_example(
    check,
    app: Tree | str | os.PathLike[str],
    services: LocalServices | None = None,
    rules: Rules = DEFAULT_RULES,
    require_env: bool = True,
) -> None:
    """Task 1.9's verification, from the files: the app's settings on localhost with its identity,
    nothing lost, ``.env`` usable and ignored."""
    from helpers.core.secrets import scrub

    tree = Tree.of(app)
    services = services or LocalServices()
    text = tree.read(EXAMPLE)
    if not check(
        ".env.example exists", text is not None, tree.path(EXAMPLE), hint="run task 1.9 without dry_run"
    ):
        return
    env = environment_of(text)
    for service, ep in (("postgres", env.database), ("redis", env.redis)):
        label = "PostgreSQL" if service == "postgres" else "Redis"
        wanted = services.parts(service)
        if ep is None:
            check(f"{label} settings", False, "missing", hint="run task 1.9 again")
            continue
        got = {
            "host": ep.host or "",
            "port": str(ep.port or _DEFAULT_PORTS[service]),
            "user": ep.user,
            "password": ep.password,
            "database": ep.database if service == "postgres" else str(ep.index),
        }
        wrong = [
            p
            for p, v in wanted.items()
            if got.get(p) != v and not (p == "host" and got["host"] in vmtext.LOCAL_HOSTS)
        ]
        shown = ", ".join(f"{p} {got.get(p)!r}" for p in wanted if p != "password")
        check(
            f"{label} on localhost as "
            + ", ".join(f"{p} {v}" for p, v in wanted.items() if p not in ("host", "password")),
            not wrong,
            scrub(shown, values=[])
            if not wrong
            else f"differs: {', '.join(wrong)} ({scrub(shown, values=[])})",
            hint="run task 1.9 again (with the same identity and ports as task 1.7)",
        )
    stale = vm_values(text, rules)
    check(
        "no PostgreSQL/Redis setting points at the VM",
        not stale,
        ", ".join(stale) or "none",
        hint="run task 1.9 again",
    )
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
        rewritten = {line.strip() for line in rewrite_env(committed, rules)[0].splitlines()}
        comments = [
            e.raw.strip()
            for e in parse(committed)
            if e.kind == "comment"
            and e.raw.strip() in rewritten  # not one the rules rewrite
            and not vmtext.speaks_of_vm(e.raw, rules)  # nor one a person may accept a proposal for
        ]
        lines = {line.strip() for line in text.splitlines()}
        lost = [c for c in comments if c not in lines]
        check(
            "every other comment is kept",
            not lost,
            f"lost: {lost[0]}" if lost else f"{len(comments)} comments",
            hint="restore them from `git show HEAD:.env.example`",
        )
    env_text = tree.read(LOCAL)
    if env_text is None:
        if require_env:
            check(
                ".env exists (task 1.5 reads it)",
                False,
                "missing",
                hint="run task 1.9 with create_env=True, or `cp .env.example .env`",
            )
        return
    stale = vm_values(env_text, rules)
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
