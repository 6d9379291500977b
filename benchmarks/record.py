"""The benchmarks' record: the Markdown files they write, and README's copy of their summaries.

    .venv/bin/python benchmarks/record.py            # README.md's speed tables from benchmarks/*.md
    .venv/bin/python benchmarks/record.py --check    # exit 1 when README's tables differ from the files

``benchmarks/phase1.py`` and ``benchmarks/phase2.py`` write ``benchmarks/phase1.md`` and
``benchmarks/phase2.md``: the date, the machine (cores, memory, CPU), the load average while they ran,
the Docker engine's version, then their tables. The part of each file between ``<!-- summary:start -->``
and ``<!-- summary:end -->`` is copied, unchanged, between README's ``<!-- benchmark:NAME:start -->`` and
``<!-- benchmark:NAME:end -->`` markers, so README's figures are never typed by hand
(``tests/unit/test_benchmark_record.py`` fails when they differ).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent
README = ROOT / "README.md"
NAMES = ("phase1", "phase2")
SUMMARY_START, SUMMARY_END = "<!-- summary:start -->", "<!-- summary:end -->"


def record_path(name: str) -> Path:
    return BENCHMARKS / f"{name}.md"


def readme_markers(name: str) -> tuple[str, str]:
    return f"<!-- benchmark:{name}:start -->", f"<!-- benchmark:{name}:end -->"


# -- the machine and its load -----------------------------------------------------------------------


def _first_line(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else ""


def _meminfo_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One sentence: cores, CPU, memory, Docker engine and Compose versions, Python."""
    engine = _first_line(
        ["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"]
    )
    compose = _first_line(["docker", "compose", "version", "--short"])
    return (
        f"{os.cpu_count()} cores ({_cpu_model()}), {_meminfo_gib():.1f} GiB memory, "
        f"Docker Engine {engine or 'unknown'}, Compose {compose or 'unknown'}, "
        f"Python {platform.python_version()}"
    )


@dataclass
class LoadSampler:
    """The 1-minute load average, sampled every few seconds while a benchmark runs."""

    every: float = 5.0
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    @contextmanager
    def running(self) -> Iterator[LoadSampler]:
        thread = threading.Thread(target=self._loop, daemon=True, name="load-sampler")
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=1)
            self.samples.append(os.getloadavg()[0])

    def describe(self) -> str:
        if not self.samples:
            return "load average unknown"
        low, high = min(self.samples), max(self.samples)
        mean = sum(self.samples) / len(self.samples)
        return f"load average (1 min) {low:.1f}–{high:.1f}, mean {mean:.1f}"


def heading(script: str, what: str, load: LoadSampler, began: float) -> str:
    """The sentence every record starts with: when, what, on which machine, under which load."""
    when = datetime.fromtimestamp(began, UTC).strftime("%Y-%m-%d %H:%M UTC")
    took = time.time() - began
    return (
        f"Measured {when} by `{script}` ({what}; {took / 60:.0f} min in all) on {machine()}; "
        f"{load.describe()} during the run."
    )


# -- writing the record, and README's copy -----------------------------------------------------------


def write_record(name: str, title: str, summary: str, details: str) -> Path:
    """``benchmarks/<name>.md``: the summary (what README shows) between markers, then the details."""
    path = record_path(name)
    text = (
        f"# {title}\n\n"
        f"Written by `benchmarks/{name}.py`; do not edit (run it again). `benchmarks/record.py` copies the\n"
        "summary into README.md.\n\n"
        f"{SUMMARY_START}\n{summary.strip()}\n{SUMMARY_END}\n\n{details.strip()}\n"
    )
    path.write_text(text, encoding="utf-8")
    return path


def summary_of(text: str) -> str:
    """The summary block of a record's text ("" when it has none)."""
    match = re.search(re.escape(SUMMARY_START) + r"\n(.*?)\n" + re.escape(SUMMARY_END), text, re.S)
    return match.group(1).strip() if match else ""


def readme_block(text: str, name: str) -> str | None:
    """What README holds between the markers of ``name`` (None: no markers)."""
    start, end = readme_markers(name)
    match = re.search(re.escape(start) + r"\n(.*?)\n?" + re.escape(end), text, re.S)
    return match.group(1).strip() if match else None


def synced(readme: str, records: dict[str, str]) -> str:
    """``readme`` with each marked block replaced by its record's summary."""
    for name, record in records.items():
        start, end = readme_markers(name)
        summary = summary_of(record)
        if not summary or readme_block(readme, name) is None:
            continue
        block = f"{start}\n{summary}\n{end}"
        pattern = re.escape(start) + r"\n.*?" + re.escape(end)
        readme = re.sub(pattern, lambda _match, text=block: text, readme, count=1, flags=re.S)
    return readme


def records() -> dict[str, str]:
    return {n: record_path(n).read_text(encoding="utf-8") for n in NAMES if record_path(n).is_file()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when README is stale")
    args = parser.parse_args(argv)
    before = README.read_text(encoding="utf-8")
    after = synced(before, records())
    if args.check:
        if after != before:
            print("README.md's speed tables differ from benchmarks/*.md: run benchmarks/record.py")
            return 1
        return 0
    if after != before:
        README.write_text(after, encoding="utf-8")
        print("README.md: speed tables copied from benchmarks/*.md")
    else:
        print("README.md: speed tables already match benchmarks/*.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
