"""Publishing a finished runner run folder for the site: paths rewritten, checked clean, listed.

:func:`publish` takes any folder ``runbook run`` wrote (the reference run's, or each run folder a
phase-2 rehearsal leaves) and copies it, file by file, into the reference folder as
``<name>/<phase>/`` (:mod:`helpers.docsite.published`):

* the paths of the machine that ran it (its temporary app copy, its work folder, the project) are
  replaced with placeholders such as ``/path/to/app``;
* ANSI colour codes are removed from the executed notebooks (the pages show plain text, and a code
  cannot split a value there);
* nothing is scrubbed again here: the runner's :class:`~helpers.runner.redact.Redactor` scrubbed the
  folder as it wrote it. The same redactor then *checks* every published file: a file that it would
  still change (a secret value, a token-shaped string), or that still holds a path of the machine or
  an ANSI code, stops the publication and nothing of the run is kept;
* the manifest gains the run (replacing one of the same name; a whole-phase run also replaces the
  earlier runs of its phase and kind), with the SHA-256 of every notebook it executed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from helpers.docsite.errors import DocsiteError
from helpers.docsite.published import MANIFEST, SCHEMA, file_sha256, load_manifest
from helpers.runner.ledger import Ledger, LedgerError
from helpers.runner.redact import Redactor, map_strings, strip_ansi, write_atomic

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
KINDS = ("reference", "rehearsal")
ESCAPES = ("\x1b", "\\u001b")  # an ANSI code, raw or as JSON writes it


@dataclass(frozen=True)
class Publication:
    """How a run is published: its name, what kind of run it was, where it ran, what its paths become."""

    name: str  # the run's folder in the reference folder, and its name in the manifest
    kind: str  # "reference" (real services) or "rehearsal" (stand-ins of the vendors)
    setting: str  # where it ran, one clause for the page banner ("on a temporary copy of ...")
    placeholders: Mapping[str, str]  # a path of the machine that ran it → what the site shows instead
    about: Mapping[str, Any] = field(default_factory=dict)  # engine, compose, images, commit...
    replaces_phase: bool = False  # a whole-phase run: earlier runs of the same phase and kind go

    def check(self) -> None:
        if not NAME.match(self.name):
            raise DocsiteError(f"run name {self.name!r}: use letters, digits, '.', '_' and '-' only")
        if self.kind not in KINDS:
            raise DocsiteError(f"run kind {self.kind!r}: one of {', '.join(KINDS)}")


def path_rewriter(placeholders: Mapping[str, str]) -> list[tuple[str, str]]:
    """(path, placeholder) pairs, longest path first, each path also in its resolved spelling."""
    pairs: dict[str, str] = {}
    for real, shown in placeholders.items():
        for spelling in (str(real), str(Path(real).resolve())):
            if spelling and spelling != "/":
                pairs.setdefault(spelling, shown)
    return sorted(pairs.items(), key=lambda kv: len(kv[0]), reverse=True)


def for_the_site(text: str, pairs: Iterable[tuple[str, str]]) -> str:
    """``text`` as the site shows it: no ANSI codes, the machine's paths as placeholders."""
    text = strip_ansi(text)
    for real, shown in pairs:
        text = text.replace(real, shown)
    return text


def copy_for_the_site(source: Path, target: Path, pairs: list[tuple[str, str]]) -> None:
    """One file of the run folder, rewritten (JSON string by string, text as a whole, binary as is)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        raw = source.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        shutil.copyfile(source, target)
        return
    if source.suffix in (".ipynb", ".json"):
        data = map_strings(json.loads(raw), lambda s: for_the_site(s, pairs))
        indent = 1 if source.suffix == ".ipynb" else 2
        raw = json.dumps(data, sort_keys=source.suffix == ".ipynb", indent=indent, ensure_ascii=False) + "\n"
    else:
        raw = for_the_site(raw, pairs)
    target.write_text(raw, encoding="utf-8")


def problems_in(folder: Path, redactor: Redactor, paths: Iterable[str]) -> list[str]:
    """What in ``folder`` must not be published: what the redactor would still scrub, paths, ANSI codes."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            raw = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        where = path.relative_to(folder)
        if path.suffix in (".ipynb", ".json"):
            data = json.loads(raw)
            dirty = redactor.obj(data) != data
        else:
            dirty = redactor.text(raw) != raw
        if dirty:
            found.append(f"{where}: a secret value or a token-shaped string")
        found += [f"{where}: the path {p}" for p in paths if p in raw]
        if any(e in raw for e in ESCAPES):
            found.append(f"{where}: an ANSI escape code")
    return found


def _utc(stamp: str | None) -> str:
    if not stamp:
        return "?"
    return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M UTC")


def sources(ledger: Ledger) -> dict[str, str]:
    """Task id → SHA-256 of the notebook the run executed, for every task it ran."""
    root = Path(ledger.root)
    return {
        r.id: file_sha256(root / r.notebook)
        for r in ledger.tasks
        if r.selected and r.status not in ("skipped", "not-run") and (root / r.notebook).is_file()
    }


def manifest_entry(ledger: Ledger, how: Publication, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    shown = list(dict.fromkeys(placeholder for _, placeholder in sorted(pairs, key=lambda kv: kv[1])))
    attempts = ledger.attempts or [{}]
    return {
        "name": how.name,
        "phase": ledger.phase,
        "kind": how.kind,
        "folder": f"{how.name}/{ledger.phase}",
        "status": ledger.status,
        "selection": ledger.options.get("selection", ""),
        "started": _utc(attempts[0].get("started") or ledger.created),
        "finished": _utc(attempts[-1].get("finished") or ledger.updated),
        "setting": how.setting,
        "placeholders": shown,
        "about": dict(how.about),
        "sources": sources(ledger),
    }


def publish(
    run_dir: Path, out_dir: Path, how: Publication, redactor: Redactor | None = None
) -> dict[str, Any]:
    """Publish the runner's folder ``run_dir`` into the reference folder ``out_dir``; its manifest entry.

    ``redactor``: the one the runner scrubbed the run with (it knows the run's own secrets); by
    default a new one, which knows the secrets of this environment.
    """
    how.check()
    try:
        ledger = Ledger.load(run_dir)
    except LedgerError as exc:
        raise DocsiteError(f"{run_dir} is not a run folder of the runner: {exc}") from None
    redactor = redactor or Redactor()
    pairs = path_rewriter(how.placeholders)
    out_dir = Path(out_dir)
    staging = out_dir / f".{how.name}.part"
    shutil.rmtree(staging, ignore_errors=True)
    for source in sorted(p for p in Path(run_dir).rglob("*") if p.is_file()):
        copy_for_the_site(source, staging / ledger.phase / source.relative_to(run_dir), pairs)
    problems = problems_in(staging, redactor, [real for real, _ in pairs])
    if problems:
        shutil.rmtree(staging, ignore_errors=True)
        raise DocsiteError(
            f"the run {run_dir} was not published: it still holds what the site must not show: "
            + "; ".join(problems[:10])
            + ". Fix the scrubbing (helpers/runner/redact.py) or the placeholders, then run it again"
        )
    entry = manifest_entry(ledger, how, pairs)
    shutil.rmtree(out_dir / how.name, ignore_errors=True)
    staging.rename(out_dir / how.name)
    record(out_dir, entry, how.replaces_phase)
    return entry


def record(out_dir: Path, entry: Mapping[str, Any], replaces_phase: bool) -> None:
    """Add ``entry`` to the manifest, dropping (and deleting) the runs it replaces."""
    manifest = load_manifest(out_dir)
    kept = []
    for run in manifest["runs"]:
        same_phase = run.get("phase") == entry["phase"] and run.get("kind") == entry["kind"]
        if run.get("name") == entry["name"] or (replaces_phase and same_phase):
            if run.get("name") != entry["name"]:
                shutil.rmtree(Path(out_dir) / str(run.get("name")), ignore_errors=True)
            continue
        kept.append(run)
    text = json.dumps({"schema": SCHEMA, "runs": [*kept, dict(entry)]}, indent=2, ensure_ascii=False)
    write_atomic(Path(out_dir) / MANIFEST, text + "\n")
