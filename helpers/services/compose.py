"""The app's local services under docker compose: pre-flight, start, state, verification.

Everything goes through the real ``docker compose`` CLI in the app repository
(``app_dir``), with the caller's environment, so COMPOSE_PROJECT_NAME,
POSTGRES_PORT, REDIS_PORT, POSTGRES_IMAGE and REDIS_IMAGE steer it exactly as
they steer a developer's ``docker compose up``. Compose itself resolves the
file (``docker compose config``); this module never re-implements interpolation.

Task 1.4 calls :func:`check_preflight`, :func:`up`, :func:`show_ps` and
:func:`check_services`; 1.14 re-runs the checks.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from helpers.core import steps
from helpers.core.checks import Checklist
from helpers.core.display import show_table
from helpers.core.errors import NextStepError
from helpers.core.secrets import scrub
from helpers.core.steps import StepResult
from helpers.host import ports
from helpers.host.docker_engine import EngineUnavailable, client, run_cli
from helpers.services import diagnose

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
DEFAULT_WAIT_TIMEOUT = 180
HEALTH_LOG_KEPT = 5  # the engine keeps a container's last five healthcheck results
# Which app variable carries a service's address, for messages (by image name).
URL_KEYS = (("postgres", "DATABASE_URL"), ("redis", "REDIS_URL"))
_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


class ComposeError(NextStepError, RuntimeError):
    """The compose project cannot be used as given: ``problem`` and ``next_step``."""


@dataclass(frozen=True)
class PortSpec:
    host_ip: str
    published: int
    target: int
    variable: str = ""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str
    image_variable: str = ""
    ports: tuple[PortSpec, ...] = ()
    healthcheck: bool = False

    @property
    def url_key(self) -> str:
        return next((key for word, key in URL_KEYS if word in f"{self.name} {self.image}".lower()), "")


@dataclass(frozen=True)
class Project:
    app_dir: Path
    file: Path
    name: str
    services: dict[str, ServiceSpec] = field(default_factory=dict)

    def args(self, *more: str) -> list[str]:
        """``docker`` arguments for a compose command on this project."""
        return [
            "compose",
            "--project-directory",
            str(self.app_dir),
            "-f",
            str(self.file),
            "-p",
            self.name,
            *more,
        ]


@dataclass(frozen=True)
class ServiceState:
    service: str
    container: str
    state: str
    health: str
    publishers: tuple[tuple[str, int, int], ...] = ()  # (host ip, published, target)
    image: str = ""

    @property
    def ready(self) -> bool:
        """Running, and healthy when the service has a healthcheck."""
        return self.state == "running" and self.health in ("", "healthy")


def drift(svc: ServiceSpec, state: ServiceState) -> str:
    """How the running container differs from the file (image, published ports); "" when it matches."""
    reasons = []
    if state.image and svc.image and state.image != svc.image:
        reasons.append(f"runs image {state.image}, the file says {svc.image}")
    for port in svc.ports:
        if not any(p == port.published and t == port.target for _, p, t in state.publishers):
            reasons.append(f"does not publish {port.host_ip or '0.0.0.0'}:{port.published}->{port.target}")
    return "; ".join(reasons)


def find_compose_file(app_dir: str | Path) -> Path:
    """The compose file of ``app_dir``; :class:`ComposeError` with the next step when there is none."""
    if not str(app_dir).strip():
        raise ComposeError(
            "no app repository given (app_dir is empty)",
            "set the parameter app_dir (or RUNBOOK_APP_DIR) to the app's folder: `-p app_dir ~/code/app`",
        )
    path = Path(app_dir).expanduser()
    if not path.is_dir():
        raise ComposeError(f"app_dir {path} does not exist or is not a folder", "check the parameter app_dir")
    for name in COMPOSE_FILES:
        if (path / name).is_file():
            return path / name
    raise ComposeError(
        f"no docker-compose.yml in {path}", "run task 1.7 first (it creates the app's docker-compose.yml)"
    )


def _variable(raw: Any) -> str:
    names = _VAR.findall(str(raw or ""))
    return next((n for n in names if n.endswith(("PORT", "IMAGE"))), names[0] if names else "")


def _config(app_dir: Path, file: Path, *extra: str) -> dict[str, Any]:
    res = run_cli(
        "compose", "--project-directory", str(app_dir), "-f", str(file), "config", *extra, "--format", "json"
    )
    if not res.ok:
        if "docker" in res.error and "not on PATH" in res.error:
            raise ComposeError("the docker CLI is not installed", "install Docker (task 1.2)")
        raise ComposeError(
            f"`docker compose config` rejects {file}: {scrub(res.error)}",
            "fix the file, or re-run task 1.7 to regenerate it",
        )
    return json.loads(res.stdout)


def parse_config(resolved: dict[str, Any], raw: dict[str, Any], app_dir: Path, file: Path) -> Project:
    """A :class:`Project` from ``docker compose config`` output, resolved and ``--no-interpolate``."""
    services: dict[str, ServiceSpec] = {}
    for name, body in (resolved.get("services") or {}).items():
        raw_body = (raw.get("services") or {}).get(name, {})
        raw_ports = raw_body.get("ports") or []
        specs = []
        for i, port in enumerate(body.get("ports") or []):
            if port.get("published") in (None, ""):
                continue
            raw_port = raw_ports[i] if i < len(raw_ports) else ""
            if isinstance(raw_port, dict):
                raw_port = raw_port.get("published", "")
            specs.append(
                PortSpec(
                    host_ip=port.get("host_ip") or "",
                    published=int(str(port["published"]).split("-")[0]),
                    target=int(port.get("target", 0)),
                    variable=_variable(raw_port),
                )
            )
        hc = body.get("healthcheck") or {}
        services[name] = ServiceSpec(
            name=name,
            image=body.get("image", ""),
            image_variable=_variable(raw_body.get("image")),
            ports=tuple(specs),
            healthcheck=bool(hc.get("test")) and not hc.get("disable"),
        )
    return Project(app_dir=app_dir, file=file, name=resolved.get("name", ""), services=services)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


_COMPOSE_OWN = ("COMPOSE_", "DOCKER_")  # Compose's own settings (project name, files, profiles, engine)
_NESTED = re.compile(r"^\s*(include|extends)\s*:", re.MULTILINE)  # other files, with variables of their own


def environment_key(text: str, environ: Mapping[str, str]) -> frozenset[tuple[str, str]]:
    """The part of ``environ`` that can change what ``docker compose config`` says of a file whose text
    (with its folder's ``.env``) is ``text``: the variables it names (``${POSTGRES_PORT:-5432}``) and
    Compose's own ``COMPOSE_*`` / ``DOCKER_*``; all of it when the file pulls in other files
    (``include``, ``extends``)."""
    if _NESTED.search(text):
        return frozenset(environ.items())
    named = set(_VAR.findall(text))
    return frozenset((k, v) for k, v in environ.items() if k in named or k.startswith(_COMPOSE_OWN))


def load(app_dir: str | Path) -> Project:
    """Resolve the app's compose project as compose sees it (environment and ``.env`` applied).

    Remembered while the file, the folder's ``.env`` and the variables that matter to the file
    (:func:`environment_key`) stay the same, so the steps of a run ask ``docker compose config``
    once: the runner sets ``RUNBOOK_TASK_ID`` for each notebook, which no compose file reads.
    (A function's cache, not a module-level dict: the runner's warm kernel reads a grown dict as
    changed module state and imports every project module afresh before the next notebook.)
    """
    file = find_compose_file(app_dir)
    folder = file.parent.resolve()
    texts = []
    for path in (file, folder / ".env"):  # .env's own values can name variables too (X=${Y})
        try:
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            pass
        except OSError:
            texts.append("include:")  # unreadable here: compose will say why; key on everything meanwhile
    key = environment_key("\n".join(texts), os.environ)
    return _resolved(file, folder, _stamp(file), _stamp(folder / ".env"), key)


@functools.lru_cache(maxsize=16)
def _resolved(
    file: Path, folder: Path, file_stamp: Any, env_stamp: Any, environ: frozenset[tuple[str, str]]
) -> Project:
    """The project of ``file``; the stamps and the environment are part of the cache's key."""
    raw = _config(folder, file, "--no-interpolate")
    return parse_config(_config(folder, file), raw, folder, file)


def parse_ps(text: str) -> list[dict[str, Any]]:
    """``docker compose ps --format json``: a JSON array (older v2) or one object per line (v2.21+)."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def states(project: Project) -> dict[str, ServiceState]:
    """The project's containers by service (stopped ones included)."""
    res = run_cli(*project.args("ps", "-a", "--format", "json"))
    if not res.ok:
        raise EngineUnavailable(f"`docker compose ps` failed: {res.error}", _engine_hint(res.error))
    out: dict[str, ServiceState] = {}
    for row in parse_ps(res.stdout):
        pubs = tuple(
            (p.get("URL", ""), int(p.get("PublishedPort") or 0), int(p.get("TargetPort") or 0))
            for p in row.get("Publishers") or []
            if p.get("PublishedPort")
        )
        out[row.get("Service", "")] = ServiceState(
            service=row.get("Service", ""),
            container=row.get("Name", ""),
            state=row.get("State", ""),
            health=row.get("Health", ""),
            publishers=pubs,
            image=row.get("Image", ""),
        )
    return out


def _engine_hint(error: str) -> str:
    from helpers.host.docker_engine import engine_hint

    return engine_hint(error)


def check_preflight(check: Checklist, app_dir: str | Path, docker_client: Any = None) -> Project | None:
    """Before ``up``: compose file valid, images present or pullable, host ports free (or ours)."""
    try:
        project = load(app_dir)
    except ComposeError as exc:
        check("compose file present and valid", False, exc.problem, hint=exc.next_step)
        return None
    check("compose file present and valid", True, f"{project.file} (project {project.name})")
    try:
        docker_client = docker_client or client(timeout=30)
    except EngineUnavailable as exc:
        check("Docker engine answers", False, str(exc).splitlines()[0], hint=_engine_cause(exc))
        return project
    for svc in project.services.values():
        _check_image(check, docker_client, svc)
    for svc in project.services.values():
        for port in svc.ports:
            _check_port(check, docker_client, project, svc, port)
    return project


def _check_image(check: Checklist, docker_client: Any, svc: ServiceSpec) -> None:
    from docker.errors import APIError, ImageNotFound

    name = f"image of {svc.name} present or pullable"
    try:
        docker_client.images.get(svc.image)
        check(name, True, f"{svc.image} (present locally)")
        return
    except ImageNotFound:
        pass
    try:
        docker_client.api.inspect_distribution(svc.image)
    except APIError as exc:
        reason = exc.explanation or str(exc)
        setting = (
            f"set {svc.image_variable} to an image you have" if svc.image_variable else "change its image"
        )
        check(
            name,
            False,
            f"{svc.image} is not present locally and cannot be pulled ({_oneline(reason, 160)})",
            hint=f"pull it where a registry is reachable (`docker pull {svc.image}`), or {setting} "
            "(`docker image ls` lists them)",
        )
        return
    check(name, True, f"{svc.image} (not local yet; the registry has it, compose will pull it)")


def _tail(text: str, limit: int) -> str:
    """The last words of ``text`` within ``limit`` characters."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    return cut.split(" ", 1)[-1]


def _oneline(text: object, limit: int) -> str:
    return " ".join(str(text).split())[:limit]


def _check_port(
    check: Checklist, docker_client: Any, project: Project, svc: ServiceSpec, port: PortSpec
) -> None:
    host = port.host_ip or "0.0.0.0"
    name = f"host port {host}:{port.published} free for {svc.name}"
    if ports.is_free(port.published, host):
        check(name, True, "free")
        return
    found = ports.holders(port.published, docker_client)
    ours = [h for h in found if h.kind == "container" and h.project == project.name and h.service == svc.name]
    others = [h for h in found if h not in ours]
    if ours and not others:
        check(name, True, f"held by this project's own {svc.name} ({ours[0].name}): already running")
        return
    problem, next_step = ports.describe_taken(port.published, others, port.variable, svc.url_key)
    check(name, False, problem, hint=next_step)


def up(
    app_dir: str | Path, dry_run: bool = False, wait_timeout: int = DEFAULT_WAIT_TIMEOUT
) -> list[StepResult]:
    """``docker compose up -d --wait`` unless every service already runs healthy (then: ok)."""
    try:
        project = load(app_dir)
        before = states(project)
    except (ComposeError, EngineUnavailable) as exc:
        return [steps.failed("docker compose up", str(exc))]
    why: dict[str, str] = {}
    for s, svc in project.services.items():
        state = before.get(s)
        if state is None:
            why[s] = "not created"
        elif not state.ready:
            why[s] = f"{state.state} {state.health}".strip()
        elif reason := drift(svc, state):
            why[s] = f"recreate: {reason}"
    waiting = list(why)
    if not waiting:
        return [steps.ok(f"service {s}", _state_text(before[s])) for s in project.services]
    if dry_run:
        return [
            steps.ok(f"service {s}", _state_text(before[s]))
            if s not in waiting
            else steps.changed(
                f"service {s}",
                f"would run `docker compose -p {project.name} up -d --wait` ({why[s]})",
                dry_run=True,
            )
            for s in project.services
        ]
    res = run_cli(
        *project.args("up", "-d", "--wait", "--wait-timeout", str(wait_timeout)), timeout=wait_timeout + 120
    )
    if not res.ok:
        return [steps.failed("docker compose up", diagnose_up_failure(project, res.stderr or res.stdout))]
    after = states(project)
    results = []
    for s in project.services:
        state = after.get(s)
        if state is None or not state.ready:
            results.append(
                steps.failed(f"service {s}", f"{_state_text(state)}; see `docker compose logs {s}`")
            )
        elif s in waiting:
            verb = "recreated" if why[s].startswith("recreate") else "started"
            took = healthy_after(state.container) if project.services[s].healthcheck else None
            results.append(steps.changed(f"service {s}", f"{verb}: {_state_text(state)}{took or ''}"))
        else:
            results.append(steps.ok(f"service {s}", _state_text(state)))
    return results


def engine_instant(stamp: str) -> datetime:
    """An engine timestamp (RFC 3339 with nanoseconds, ``Z``) as an aware datetime."""
    head, _, rest = stamp.strip().partition(".")
    digits = "".join(c for c in rest if c.isdigit())
    zone = rest[len(digits) :] if rest else head[19:]
    head = head[:19]
    zone = "+00:00" if zone in ("Z", "") else zone
    return datetime.fromisoformat(f"{head}.{(digits or '0')[:6].ljust(6, '0')}{zone}")


def health_delay(state: dict[str, Any]) -> tuple[float, bool] | None:
    """Seconds from a container's start to the end of its first passing healthcheck, from ``docker
    inspect``'s ``State``; the flag is False when the engine's log (its last probes only) may no longer
    hold the ones before it (the time is then an upper bound). None: no passing probe (yet)."""
    log = (state.get("Health") or {}).get("Log") or []
    started = state.get("StartedAt") or ""
    passing = [n for n, probe in enumerate(log) if probe.get("ExitCode") == 0]
    if not passing or not started or started.startswith("0001-"):
        return None
    first = passing[0]
    seconds = (engine_instant(log[first]["End"]) - engine_instant(started)).total_seconds()
    exact = first > 0 or len(log) < HEALTH_LOG_KEPT
    return max(0.0, seconds), exact


def healthy_after(container: str) -> str:
    """``", healthy 1.6 s after its start"`` (read from the engine), or "" when it cannot tell."""
    res = run_cli("inspect", "--format", "{{json .State}}", container)
    if not res.ok:
        return ""
    try:
        found = health_delay(json.loads(res.stdout))
    except (ValueError, KeyError, TypeError):
        return ""
    if found is None:
        return ""
    seconds, exact = found
    return f", healthy {'' if exact else 'within '}{seconds:.1f} s after its start"


def _state_text(state: ServiceState | None) -> str:
    if state is None:
        return "no container"
    health = f" ({state.health})" if state.health else ""
    pubs = ", ".join(f"{ip}:{pub}->{target}" for ip, pub, target in state.publishers)
    return f"{state.container} {state.state}{health}" + (f" on {pubs}" if pubs else "")


def diagnose_up_failure(project: Project, output: str) -> str:
    """Turn compose's error into what happened and the next step."""
    text = scrub(" ".join(output.split()))
    tail = _tail(text, 400)
    port_match = re.search(r"(?:Bind for|listen tcp4?|bind) [^ ]*?:(\d+)[^a-z]*(?:failed|: bind)", text)
    if port_match or "port is already allocated" in text or "address already in use" in text:
        port = int(port_match.group(1)) if port_match else None
        if port is None:
            return f"a host port is taken ({tail}). Next step: run the pre-flight check to see which"
        spec = next(
            ((svc, p) for svc in project.services.values() for p in svc.ports if p.published == port), None
        )
        variable, url_key = (spec[1].variable, spec[0].url_key) if spec else ("", "")
        problem, next_step = ports.describe_taken(port, ports.holders(port), variable, url_key)
        return f"{problem}. Next step: {next_step}"
    if "pull access denied" in text or "manifest unknown" in text or "no such host" in text:
        absent = [s for s in project.services.values() if not run_cli("image", "inspect", s.image).ok]
        which = ", ".join(f"{s.image} ({s.image_variable or s.name})" for s in absent) or "an image"
        names = " / ".join(s.image_variable for s in absent if s.image_variable) or "the images"
        return (
            f"{which}: not present locally and the pull failed (…{_tail(text, 200)}). "
            f"Next step: set {names} to "
            "images you have (`docker image ls`), or pull them where a registry is reachable"
        )
    unhealthy = re.findall(r"container ([\w.-]+) (?:is unhealthy|exited)", text)
    if unhealthy:
        return (
            f"{', '.join(unhealthy)} did not become healthy ({tail}). Next step: "
            f"`docker compose -p {project.name} logs` shows why"
        )
    return f"{tail}. Next step: `docker compose -p {project.name} logs` and `docker compose ps -a`"


def ps_rows(app_dir: str | Path | Project) -> list[tuple[str, str, str, str, str]]:
    project = app_dir if isinstance(app_dir, Project) else load(app_dir)
    current = states(project)
    rows = []
    for name in project.services:
        state = current.get(name)
        if state is None:
            rows.append((name, "—", "not created", "—", "—"))
            continue
        pubs = ", ".join(f"{ip}:{pub}->{t}" for ip, pub, t in state.publishers)
        rows.append((name, state.container, state.state, state.health or "—", pubs or "—"))
    return rows


def show_ps(app_dir: str | Path) -> None:
    """``docker compose ps`` as a table."""
    project = load(app_dir)
    show_table(
        ("service", "container", "state", "health", "ports"),
        ps_rows(project),
        title=f"docker compose ps (project {project.name})",
    )


def _accepts(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_services(check: Checklist, app_dir: str | Path, services: list[str] | None = None) -> None:
    """Every service of the app's compose project runs, is healthy and answers on its 127.0.0.1 port."""
    try:
        project = load(app_dir)
        current = states(project)
    except ComposeError as exc:
        check("compose project readable", False, exc.problem, hint=exc.next_step)
        return
    except EngineUnavailable as exc:
        check("Docker engine answers", False, str(exc).splitlines()[0], hint=_engine_cause(exc))
        return
    for name in services or list(project.services):
        svc = project.services.get(name)
        state = current.get(name)
        if svc is None:
            check(
                f"service {name} defined",
                False,
                f"not in {project.file}",
                hint="re-run task 1.7 to regenerate docker-compose.yml",
            )
            continue
        check(
            f"{name} running and healthy",
            state is not None and state.ready,
            _state_text(state),
            hint=_not_ready_hint(project, svc, state),
        )
        if state is None or state.state != "running":
            continue  # the row above already fails; port rows would only repeat it
        for port in svc.ports:
            host = port.host_ip or "0.0.0.0"
            published = any(p == port.published and t == port.target for _, p, t in state.publishers)
            check(
                f"{name} published on 127.0.0.1:{port.published}",
                published and host == "127.0.0.1",
                _state_text(state),
                hint=f"the file wants {host}:{port.published}->{port.target}; keep ports on 127.0.0.1 only "
                f"in docker-compose.yml, then recreate: `docker compose -p {project.name} up -d --wait`",
            )
            answers = _accepts("127.0.0.1", port.published)
            check(
                f"{name} accepts connections on 127.0.0.1:{port.published}",
                answers,
                f"127.0.0.1:{port.published}",
                hint=""
                if answers
                else diagnose.refused_hint("127.0.0.1", port.published, project.name, name),
            )


def _engine_cause(exc: EngineUnavailable) -> str:
    """The engine's first cause (not running, DOCKER_HOST, permission) with its fix, from the diagnosis."""
    finding = diagnose.engine_finding()
    return diagnose.explain(finding) if not finding.ok else exc.hint


def _not_ready_hint(project: Project, svc: ServiceSpec, state: ServiceState | None) -> str:
    """Why a service is not running and healthy: its port taken by another, else the container itself."""
    if state is not None and state.state == "running":
        return (
            f"`docker compose -p {project.name} logs {svc.name}` shows why it is not healthy (task 1.4 waits "
            f"for it: `docker compose -p {project.name} up -d --wait`)"
        )
    for port in svc.ports:
        holders = diagnose.foreign_holders(port.published, project.name)
        if holders:
            return diagnose.explain(
                diagnose.port_taken_finding(port.published, holders, port.variable, svc.url_key)
            )
    container = diagnose.Container(
        name=state.container if state else f"{project.name}-{svc.name}-1",
        state=state.state if state else "not created",
        status=state.state if state else "not created",
        project=project.name,
        service=svc.name,
    )
    return diagnose.explain(diagnose.stopped_finding(container))


def down(app_dir: str | Path, remove_volumes: bool = False, dry_run: bool = False) -> list[StepResult]:
    """Stop and remove the project's containers; its volumes (the data) only with ``remove_volumes``."""
    try:
        project = load(app_dir)
        current = states(project)
    except (ComposeError, EngineUnavailable) as exc:
        return [steps.failed("docker compose down", str(exc))]
    if not current and not remove_volumes:
        return [steps.ok("docker compose down", "no containers")]
    what = "containers and volumes (data deleted)" if remove_volumes else "containers (volumes kept)"
    if dry_run:
        return [steps.changed("docker compose down", f"would remove {what}", dry_run=True)]
    res = run_cli(*project.args("down", *(["--volumes"] if remove_volumes else [])), timeout=180)
    if not res.ok:
        return [steps.failed("docker compose down", scrub(res.error))]
    return [steps.changed("docker compose down", f"removed {what} of project {project.name}")]
