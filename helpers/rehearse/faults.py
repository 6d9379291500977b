"""A rehearsal's fault mode (issue 12): vendor faults and cut SSH sessions, then a count from outside.

``python -m helpers.rehearse phase2 --faults SEED`` runs phase 2 while

* the three stand-ins inject faults at seeded random points within a fixed budget per run (:class:`Plan`,
  set on each stand-in through its control API, :class:`~helpers.rehearse.base.Chaos`): 429 with
  ``Retry-After``, 500, 503, slow answers, and *lost responses* — the stand-in acts (the droplet is
  created) and the connection drops before the answer;
* one SSH session on the droplet is cut while a command runs (:data:`SSH_DROPPER`, run inside the droplet
  container: it kills the session's sshd processes, as a network failure would end them);

and the rehearsal answers each failed task with ``runbook resume``, as an operator would. Afterwards
:func:`inventory` counts what exists at each vendor through the vendors' own APIs (never the runbook's
record): exactly one droplet, firewall, SSH key and project, and every named resource (database,
application, environment variable, repository secret) once. :func:`figures` reads the stand-ins' request
logs: the faults injected by kind, the requests the clients repeated at once (retries).
"""

from __future__ import annotations

import collections
import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from helpers.rehearse.base import FAULT_KINDS, STANDIN_AGENT, LoggedRequest

AGENT = f"{STANDIN_AGENT} (rehearsal)"  # the rehearsal's own requests: the fault mode spares them

# Per stand-in and run: faults in the requests that change something, and in the others. A fault in a
# write that the client must not repeat blindly (every write but a 429) fails the task: the rehearsal
# resumes. Faults in reads are absorbed by the clients' retries.
WRITES: dict[str, dict[str, int]] = {
    "digitalocean": {"lost_response": 1, "server_error": 1},
    "coolify": {"lost_response": 2, "rate_limited": 1},
    "github": {"lost_response": 1},
}
READS: dict[str, dict[str, int]] = {
    "digitalocean": {"rate_limited": 1, "unavailable": 1, "slow": 1},
    "coolify": {"rate_limited": 1, "server_error": 1, "slow": 1},
    "github": {"unavailable": 1},
}
KIND_NAMES = {
    "rate_limited": "429 Retry-After",
    "server_error": "500",
    "unavailable": "503",
    "lost_response": "lost response (acted, connection dropped)",
    "slow": "slow answer",
    "ssh_drop": "SSH session cut mid-command",
}
SINGLE = ("droplet", "firewall", "ssh key", "project")  # exactly one each once their task ran


@dataclass(frozen=True)
class Plan:
    """The budget of one fault run: per stand-in, writes and reads (see the module constants)."""

    seed: int
    writes: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: WRITES)
    reads: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: READS)
    write_rate: float = 0.35
    rate: float = 0.03
    slow_seconds: float = 2.0
    ssh_drops: int = 1
    ssh_span: int = 40  # the cut session is the k-th command seen, k drawn from 1..ssh_span

    def chaos(self, standin: str, spent: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, Any]:
        """The body of ``POST /_standin/chaos`` for ``standin``, less what it already ``spent``
        (``{"writes": {...}, "reads": {...}}``: a restarted stand-in gets only the rest of the budget)."""
        spent = spent or {}

        def rest(pool: str, budget: Mapping[str, int]) -> dict[str, int]:
            used = spent.get(pool) or {}
            return {k: n - used.get(k, 0) for k, n in budget.items() if n > used.get(k, 0)}

        return {
            "seed": self.seed,
            "writes": rest("writes", self.writes.get(standin, {})),
            "reads": rest("reads", self.reads.get(standin, {})),
            "write_rate": self.write_rate,
            "rate": self.rate,
            "slow_seconds": self.slow_seconds,
        }

    def budget(self) -> int:
        pools = (*self.writes.values(), *self.reads.values())
        return sum(n for pool in pools for n in pool.values()) + self.ssh_drops


# --------------------------------------------------------------------------- SSH sessions cut mid-command

# Runs as root inside the droplet container (python3 is there: the Coolify stand-in needs it). It watches
# /proc for commands started by an SSH session ("sshd: user@notty"), and kills the session and its
# privileged monitor ("sshd: user [priv]") while the k-th command it saw still runs: the client's
# connection drops mid-command, as when a network path fails. It prints no command line (they may carry
# file contents), only the program's name.
SSH_DROPPER = r"""
import os, random, signal, sys, time
seed, drops, span = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed + "/ssh")
targets = set(rng.sample(range(1, span + 1), min(drops, span)))
def table():
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except (OSError, IndexError, ValueError):
            continue
        out[int(pid)] = (ppid, cmd)
    return out
seen, count, done = set(), 0, 0
print(f"pid {os.getpid()}: watching for SSH commands, cutting {len(targets)} session(s)", flush=True)
while done < drops:
    procs = table()
    sessions = {p for p, (_, c) in procs.items() if c.startswith("sshd: ") and "@notty" in c}
    for pid, (ppid, cmd) in sorted(procs.items()):
        if ppid not in sessions or pid in seen:
            continue
        seen.add(pid)
        count += 1
        if count not in targets:
            continue
        time.sleep(rng.uniform(0.05, 0.25))
        if not os.path.exists(f"/proc/{pid}"):
            targets.add(count + 1)  # it ended first: the next command
            continue
        monitor = procs.get(ppid, (0, ""))[0]
        victims = [ppid] + ([monitor] if "[priv]" in procs.get(monitor, (0, ""))[1] else [])
        for victim in victims:
            try:
                os.kill(victim, signal.SIGKILL)
            except OSError:
                pass
        name = os.path.basename(cmd.split(" ", 1)[0]) if cmd else "?"
        print(f"ssh_drop: cut the SSH session of command #{count} ({name}) mid-command", flush=True)
        done += 1
    time.sleep(0.05)
"""


class SshDropper:
    """:data:`SSH_DROPPER` running in a droplet container (``docker exec``), its report lines kept."""

    def __init__(self, container: str, plan: Plan) -> None:
        self.container = container
        self.lines: list[str] = []
        cmd = ["docker", "exec", "-i", container, "python3", "-u", "-c", SSH_DROPPER]
        self.proc = subprocess.Popen(
            [*cmd, str(plan.seed), str(plan.ssh_drops), str(plan.ssh_span)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    @property
    def drops(self) -> int:
        return sum(1 for line in self.lines if line.startswith("ssh_drop:"))

    def failed_to_start(self) -> bool:
        """The script never ran (the container was not running yet): ``docker exec`` ended without it."""
        if self.proc.poll() is None:
            return False
        self._reader.join(timeout=5)
        return not any(line.startswith("pid ") for line in self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # the docker client; the script ends with the container at the latest
        self.proc.wait()
        self._reader.join(timeout=5)
        pid = next((line.split()[1].rstrip(":") for line in self.lines if line.startswith("pid ")), "")
        if pid.isdigit():  # the script itself, in the container (it may outlive its docker client)
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["docker", "exec", self.container, "kill", pid],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )


# --------------------------------------------------------------------------- the injector


class Injector:
    """Keeps the plan in force during a rehearsal (a background thread): sets the fault mode on each
    stand-in as it comes up (Coolify's starts inside the droplet during task 2.5, and may restart), and
    starts the SSH dropper once the droplet container exists. ``urls()`` gives the stand-ins' base URLs by
    name; ``droplet()`` the droplet container or None."""

    def __init__(
        self, plan: Plan, urls: Callable[[], Mapping[str, str]], droplet: Callable[[], str | None]
    ) -> None:
        self.plan = plan
        self.urls = urls
        self.droplet = droplet
        self.spent: dict[str, dict[str, dict[str, int]]] = {}  # what each stand-in injected, last read
        self.configured: dict[str, int] = collections.Counter()
        self.dropper: SshDropper | None = None
        self.dropped = 0  # SSH sessions cut by the droppers of earlier runs
        self.lines: list[str] = []  # and their reports
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fault-injector", daemon=True)

    def start(self) -> Injector:
        self.tick()
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock, contextlib.suppress(Exception):  # a stand-in going away is not its problem
                self.tick()

    def tick(self) -> None:
        import httpx

        for name, url in dict(self.urls()).items():
            try:
                answer = httpx.get(f"{url}/_standin/chaos", timeout=5)
                current = answer.json().get("chaos") if answer.status_code == 200 else "unknown"
            except (httpx.HTTPError, ValueError):
                continue  # not up (yet)
            if current == "unknown":
                continue
            if current is None:  # fresh, or restarted: the rest of its budget
                body = self.plan.chaos(name, self.spent.get(name))
                if httpx.post(f"{url}/_standin/chaos", json=body, timeout=5).status_code == 201:
                    self.configured[name] += 1
                continue
            previous = self.spent.get(name, {})
            self.spent[name] = {
                pool: {
                    k: max(n, (previous.get(pool) or {}).get(k, 0))
                    for k, n in (current["injected"][pool]).items()
                }
                for pool in ("writes", "reads")
            }
        if self.dropper is not None and self.dropper.failed_to_start():
            self.dropper = None  # the droplet was still booting: again at the next tick
        if self.dropper is None and self.plan.ssh_drops > 0:
            container = self.droplet()
            if container:
                self.dropper = SshDropper(container, self.plan)

    def new_run(self) -> None:
        """A fresh budget for the next run: the fault modes set again from the plan, a new SSH dropper."""
        import httpx

        with self._lock:
            self.tick()  # the counts so far
            for url in dict(self.urls()).values():
                with contextlib.suppress(httpx.HTTPError):
                    httpx.delete(f"{url}/_standin/chaos", timeout=5)
            self.spent.clear()
            if self.dropper is not None:
                self.dropped += self.dropper.drops
                self.lines += self.dropper.lines
                self.dropper.stop()
                self.dropper = None

    def stop(self) -> None:
        """Stop injecting: the thread, the SSH dropper, and the fault mode of every stand-in reached."""
        import httpx

        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self.tick()  # the last counts
        for url in dict(self.urls()).values():
            with contextlib.suppress(httpx.HTTPError):
                httpx.delete(f"{url}/_standin/chaos", timeout=5)
        if self.dropper is not None:
            self.dropper.stop()

    def ssh_drops(self) -> int:
        return self.dropped + (self.dropper.drops if self.dropper is not None else 0)

    def ssh_lines(self) -> list[str]:
        return self.lines + (self.dropper.lines if self.dropper is not None else [])


# --------------------------------------------------------------------------- what the logs show


@dataclass
class Figures:
    """What a fault run did, read from the stand-ins' logs (and the dropper's report)."""

    injected: dict[str, int] = field(default_factory=dict)  # by kind
    retries: int = 0  # faulted requests the client repeated at once
    lost: list[str] = field(default_factory=list)  # "POST /v2/droplets -> 202" whose answer was dropped

    @property
    def total(self) -> int:
        return sum(self.injected.values())


def figures(entries: Iterable[LoggedRequest], ssh_drops: int = 0) -> Figures:
    """Faults by kind, retries, lost responses (see :class:`Figures`) from the logged exchanges.

    A retry is a faulted request whose stand-in's next request is the same (method, path, query): the
    client repeated it after its wait, before doing anything else. A slow answer is no failure: not counted.
    """
    out = Figures()
    by_standin: dict[str, list[LoggedRequest]] = collections.defaultdict(list)
    for entry in entries:
        by_standin[entry.standin].append(entry)
    for log in by_standin.values():
        for i, entry in enumerate(log):
            if not entry.fault_kind:
                continue
            out.injected[entry.fault_kind] = out.injected.get(entry.fault_kind, 0) + 1
            if entry.dropped:
                out.lost.append(f"{entry.standin} {entry.method} {entry.path} -> {entry.status}")
            following = log[i + 1] if i + 1 < len(log) else None
            same = following is not None and (following.method, following.path, following.query) == (
                entry.method,
                entry.path,
                entry.query,
            )
            if entry.fault_kind != "slow" and same:
                out.retries += 1
    if ssh_drops:
        out.injected["ssh_drop"] = ssh_drops
    return out


def describe_kinds(injected: Mapping[str, int]) -> str:
    order = [*FAULT_KINDS, "ssh_drop"]
    return ", ".join(f"{KIND_NAMES[k]} x{injected[k]}" for k in order if injected.get(k)) or "none"


# --------------------------------------------------------------------------- what exists, read from outside


def _names(items: Iterable[Mapping[str, Any]], key: str = "name") -> collections.Counter[str]:
    return collections.Counter(str(item.get(key)) for item in items)


def inventory(
    urls: Mapping[str, str], tokens: Mapping[str, str], repository: str = "", transport: Any = None
) -> dict[str, collections.Counter[str]]:
    """What exists at each vendor, by kind and name, read through the vendors' APIs.

    ``urls``: the stand-ins' base URLs by name (``digitalocean``, ``coolify`` as the dashboard URL,
    ``github``); ``tokens``: ``DIGITALOCEAN_TOKEN``, ``COOLIFY_API_TOKEN``, ``GITHUB_TOKEN``. A vendor
    without a URL is left out. The requests carry the rehearsal's User-Agent (spared by the fault mode).
    """
    import httpx

    def client(base: str, token: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": AGENT, "Accept": "application/json"}
        return httpx.Client(base_url=base, headers=headers, timeout=30, transport=transport)

    def read(http: httpx.Client, path: str, **params: Any) -> Any:
        answer = http.get(path, params=params)
        answer.raise_for_status()
        return answer.json()

    found: dict[str, collections.Counter[str]] = {}
    if urls.get("digitalocean"):
        with client(urls["digitalocean"], tokens["DIGITALOCEAN_TOKEN"]) as do:
            found["droplet"] = _names(read(do, "/v2/droplets", per_page=200)["droplets"])
            found["firewall"] = _names(read(do, "/v2/firewalls", per_page=200)["firewalls"])
            found["ssh key"] = _names(read(do, "/v2/account/keys", per_page=200)["ssh_keys"])
            found["tag"] = _names(read(do, "/v2/tags", per_page=200)["tags"])
    if urls.get("coolify"):
        with client(urls["coolify"].rstrip("/") + "/api/v1", tokens["COOLIFY_API_TOKEN"]) as api:
            found["project"] = _names(read(api, "/projects"))
            found["database"] = _names(read(api, "/databases"))
            apps = read(api, "/applications")
            found["application"] = _names(apps)
            found["environment variable"] = collections.Counter(
                f"{app.get('name')}:{env.get('key')}"
                for app in apps
                for env in read(api, f"/applications/{app['uuid']}/envs")
                if not env.get("is_preview")
            )
    if urls.get("github") and repository:
        with client(urls["github"], tokens["GITHUB_TOKEN"]) as gh:
            body = read(gh, f"/repos/{repository}/actions/secrets", per_page=100)
            found["repository secret"] = _names(body["secrets"])
    return found


def duplicates(found: Mapping[str, collections.Counter[str]]) -> list[str]:
    """Every name held more than once, and a singleton kind (:data:`SINGLE`) with more than one."""
    out = [
        f"{kind} {name!r} x{count}"
        for kind, names in found.items()
        for name, count in names.items()
        if count > 1
    ]
    out += [
        f"{kind}: {sum(found[kind].values())} exist ({', '.join(found[kind])}), one expected"
        for kind in SINGLE
        if kind in found and len(found[kind]) > 1
    ]
    return out


def describe_inventory(found: Mapping[str, collections.Counter[str]]) -> str:
    return ", ".join(f"{kind} {sum(names.values())}" for kind, names in found.items())


__all__ = [
    "Figures",
    "Injector",
    "Plan",
    "SshDropper",
    "describe_inventory",
    "describe_kinds",
    "duplicates",
    "figures",
    "inventory",
]
