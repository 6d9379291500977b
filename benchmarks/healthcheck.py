"""Benchmark: how soon the services' healthchecks notice readiness, and what probing costs at rest.

    .venv/bin/python benchmarks/healthcheck.py [--intervals 1s,500ms] [--repeat N] [--idle S] [--no-record]

``docker-compose.yml`` probes each service every ``interval``. The engine runs the first probe one
interval after the container starts, so ``docker compose up --wait`` learns that a service is ready up to
one interval after it is. Docker Engine 25 and later can probe faster while a container starts
(``start_interval``); Compose refuses that key on older engines (Debian 12's is 20.10), and a shared file
must work on both. A shorter interval notices sooner, but the engine runs a probe (a ``docker exec``) that
often for as long as the services run. This script measures both sides for each interval, on copies of the
project's own ``docker-compose.yml`` that differ only in ``interval``:

* ``up --wait``: ``docker compose up -d --wait`` on fresh volumes (median of the rounds);
* ``noticed after ready``: per service, from the moment its log says it accepts connections to the end of
  its first passing probe (the engine's own timestamps);
* ``CPU at rest``: the machine's busy share (all cores, from ``/proc/stat``) while both services idle,
  minus the same share with nothing running, measured just before.

It writes ``benchmarks/healthcheck.md`` with the date, the machine and its load (``--no-record``: print
only). Needs the Docker engine and the service images (``scripts/provision.sh images``). A benchmark, not
a test: nothing asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# What each service's log says once it accepts connections (PostgreSQL says it twice on a first start:
# the private server of the initialisation, then the real one; the last one counts).
READY = {"postgres": "database system is ready to accept connections", "redis": "Ready to accept connections"}


def compose_with_interval(interval: str, folder: Path) -> Path:
    """The project's docker-compose.yml, every healthcheck's interval set to ``interval``."""
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for body in data["services"].values():
        if isinstance(body.get("healthcheck"), dict):
            body["healthcheck"]["interval"] = interval
    path = folder / f"compose-{interval}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _instant(stamp: str) -> float:
    from helpers.services.compose import engine_instant

    return engine_instant(stamp).timestamp()


def _docker(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, env=env)


def noticed_after_ready(container: str, service: str) -> float | None:
    """Seconds from the service's 'ready' log line to the end of its first passing probe."""
    logs = _docker("logs", "-t", container)
    lines = [
        line for line in (logs.stdout + logs.stderr).splitlines() if READY[service].lower() in line.lower()
    ]
    state = json.loads(_docker("inspect", "--format", "{{json .State}}", container).stdout or "{}")
    probes = [p for p in (state.get("Health") or {}).get("Log") or [] if p.get("ExitCode") == 0]
    if not lines or not probes:
        return None
    ready = _instant(lines[-1].split()[0])
    return _instant(probes[0]["End"]) - ready


def busy_share(seconds: float) -> float:
    """The machine's busy share (0..1, all cores) over ``seconds``, from /proc/stat."""

    def sample() -> list[int]:
        return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]

    before = sample()
    time.sleep(seconds)
    delta = [b - a for a, b in zip(before, sample(), strict=True)]
    idle = delta[3] + delta[4]  # idle and iowait
    return (sum(delta) - idle) / max(1, sum(delta))


class Project:
    def __init__(self, compose: Path, name: str):
        from helpers.host.ports import free_port
        from helpers.runner import sampleapp

        self.compose, self.name = compose, name
        self.env = {
            **os.environ,
            **sampleapp.service_images(),
            "COMPOSE_PROJECT_NAME": name,
            "POSTGRES_PORT": str(free_port()),
            "REDIS_PORT": str(free_port()),
        }

    def up(self) -> float:
        began = time.perf_counter()
        proc = subprocess.run(
            ["docker", "compose", "-f", str(self.compose), "up", "-d", "--wait"],
            capture_output=True,
            text=True,
            env=self.env,
        )
        if proc.returncode != 0:
            raise SystemExit(f"docker compose up failed:\n{proc.stdout}{proc.stderr}")
        return time.perf_counter() - began

    def down(self) -> None:
        subprocess.run(
            ["docker", "compose", "-f", str(self.compose), "down", "-v", "--timeout", "10"],
            capture_output=True,
            env=self.env,
        )


def measure(interval: str, folder: Path, repeat: int, idle: float) -> dict[str, list[float]]:
    compose = compose_with_interval(interval, folder)
    found: dict[str, list[float]] = {"up": [], "postgres": [], "redis": [], "cpu": []}
    for n in range(repeat):
        project = Project(compose, f"rb-health-bench-{os.getpid()}-{n}")
        try:
            found["up"].append(project.up())
            for service in ("postgres", "redis"):
                lag = noticed_after_ready(f"{project.name}-{service}-1", service)
                if lag is not None:
                    found[service].append(lag)
            if n == 0 and idle > 0:
                project.down()
                rest = busy_share(idle)  # nothing running
                project = Project(compose, f"rb-health-bench-{os.getpid()}-idle")
                project.up()
                time.sleep(2)
                found["cpu"].append(busy_share(idle) - rest)
        finally:
            project.down()
        print(f"{interval}: round {n + 1}: up --wait {found['up'][-1]:.2f} s", flush=True)
    return found


def _median(values: list[float], fmt: str) -> str:
    return fmt.format(statistics.median(values)) if values else "–"


def rounds(results: dict[str, dict[str, list[float]]]) -> str:
    """Every round's figures (the record's details)."""
    lines = ["## Every round", "", "| interval | measured | rounds |", "| --- | --- | --- |"]
    for interval, found in results.items():
        for key, label in (("up", "up --wait (s)"), ("postgres", "PostgreSQL (s)"), ("redis", "Redis (s)")):
            lines.append(f"| {interval} | {label} | {', '.join(f'{v:.2f}' for v in found[key])} |")
    return "\n".join(lines)


def render(results: dict[str, dict[str, list[float]]], heading: str, start_interval: str) -> str:
    rows = [
        f"| {interval} | {_median(r['up'], '{:.2f} s')} | {_median(r['postgres'], '{:.2f} s')} | "
        f"{_median(r['redis'], '{:.2f} s')} | {_median([100 * c for c in r['cpu']], '{:.1f} %')} |"
        for interval, r in results.items()
    ]
    return "\n".join(
        [
            heading,
            "",
            "| interval | `up -d --wait` | PostgreSQL noticed after ready | Redis noticed after ready "
            "| CPU at rest (both services, share of all cores) |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
            start_interval,
        ]
    )


def engine_major() -> int:
    proc = _docker("version", "--format", "{{.Server.Version}}")
    try:
        return int(proc.stdout.strip().split(".")[0])
    except ValueError:
        return 0


def main(argv: list[str] | None = None) -> int:
    import record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", default="1s,500ms", help="comma-separated (default 1s,500ms)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per interval (default 3)")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of each CPU sample (default 20)")
    parser.add_argument("--no-record", dest="record", action="store_false", help="print only")
    args = parser.parse_args(argv)

    from helpers.runner import sampleapp

    for image in sampleapp.service_images().values():
        if not sampleapp.image_present(image):
            sys.exit(f"image {image} is not present: run `scripts/provision.sh images` first")
    folder = Path(tempfile.mkdtemp(prefix="rb-health-bench-"))
    began = time.time()
    load = record.LoadSampler()
    results: dict[str, dict[str, list[float]]] = {}
    try:
        with load.running():
            for interval in [i.strip() for i in args.intervals.split(",") if i.strip()]:
                results[interval] = measure(interval, folder, args.repeat, args.idle)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    major = engine_major()
    start_interval = (
        f"This engine (Docker {major}) supports `start_interval`; the shared file does without it so "
        "that it works on engines before 25 too."
        if major >= 25
        else f"`start_interval` (faster probes while starting) needs Docker Engine 25; this engine is "
        f"{major}, and Compose refuses the key on it."
    )
    what = (
        f"{args.repeat} round(s) per interval on fresh volumes, medians; CPU over {args.idle:.0f} s at rest"
    )
    summary = render(results, record.heading("benchmarks/healthcheck.py", what, load, began), start_interval)
    print(f"\n{summary}")
    if args.record:
        path = record.write_record(
            "healthcheck",
            "Healthchecks: how soon readiness is noticed, and what probing costs at rest",
            summary,
            rounds(results),
        )
        print(f"\nwritten: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
