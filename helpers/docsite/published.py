"""What reference runs leave for the site: the runner's own run folders, and a manifest listing them.

The reference folder (``RUNBOOK_DOCS_REFERENCE``, default ``.work/docs/reference/``, git-ignored)::

    manifest.json         the published runs, oldest first (:func:`load_manifest`)
    <run>/<phase>/        one runner run folder each, as ``runbook run`` wrote it: ledger.json,
                          summary.md, summary.html, runner.log and the executed <task>.ipynb,
                          with the run's temporary paths shown as placeholders

Each manifest entry says which phase the run executed, whether it was a ``reference`` run (real
services) or a ``rehearsal`` (stand-ins), where it ran, and the SHA-256 of every notebook it
executed (a page whose notebook changed since is rendered bare). A task's outcome is read from the
run's ``ledger.json``, the runner's record, never from a copy: :func:`results`.

The run folder is named ``<phase>`` inside a folder named after the run because MkDocs serves a
task's page from ``<folder>/<phase>/<task>.ipynb``, the same address as the bare notebook.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.core.paths import WORK_DIR
from helpers.core.settings import env
from helpers.docsite.errors import DocsiteError
from helpers.runner.ledger import Ledger, LedgerError, TaskRecord

DEFAULT_REFERENCE_DIR = WORK_DIR / "docs" / "reference"
DEFAULT_REHEARSAL_DIR = WORK_DIR / "docs" / "rehearsal"  # the workspace of `make docs-rehearsal` (Makefile)
MANIFEST = "manifest.json"
SCHEMA = 2
OFF = ("off", "0", "no", "none", "false")
REDO = "delete it and run `python -m helpers.docsite reference-run` again"


def reference_dir() -> Path | None:
    """The reference folder the site shows, or None when ``RUNBOOK_DOCS_REFERENCE=off``."""
    value = env.docs_reference
    if value.lower() in OFF:
        return None
    return Path(value).expanduser() if value else DEFAULT_REFERENCE_DIR


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_manifest(ref_dir: Path | None) -> dict[str, Any]:
    """The manifest, ``{"schema": 2, "runs": [...]}``; empty runs without one (or from an older runbook)."""
    empty: dict[str, Any] = {"schema": SCHEMA, "runs": []}
    if ref_dir is None or not (Path(ref_dir) / MANIFEST).is_file():
        return empty
    path = Path(ref_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DocsiteError(f"{path} is not valid JSON ({exc}); {REDO}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("runs"), list):
        return empty  # written by an older runbook: its runs are not runner folders
    return data


def describe_run(run: Mapping[str, Any]) -> str:
    """``on 2026-12-02 10:04 UTC, Docker Engine 20.10.24, Compose 2.40.3, images ..., runbook commit ...``."""
    about = run.get("about", {})
    parts = [f"on {run.get('finished', '?')}"]
    if about.get("engine"):
        parts.append(f"Docker Engine {about['engine']}")
    if about.get("compose"):
        parts.append(f"Compose {about['compose']}")
    if about.get("images"):
        parts.append("images " + " and ".join(sorted(about["images"].values())))
    if about.get("commit"):
        parts.append(f"runbook commit {about['commit']}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Result:
    """A task's outcome in a published run, as that run's ledger records it."""

    run: Mapping[str, Any]  # the manifest entry of the run
    record: TaskRecord
    executed: Path  # where the executed notebook is (or would be) in the published run folder

    @property
    def source_sha256(self) -> str:
        return self.run.get("sources", {}).get(self.record.id, "")

    @property
    def problem(self) -> str:
        """Why the task did not pass, in the ledger's words (empty when it passed)."""
        if self.record.status == "passed":
            return ""
        error = self.record.error or {}
        detail = f"{error.get('ename', '')}: {error.get('evalue', '')}" if error else self.record.reason
        return f"{self.record.status}: {detail.strip()}" if detail.strip() else self.record.status


def run_ledger(ref_dir: Path, run: Mapping[str, Any]) -> Ledger:
    folder = Path(ref_dir) / run.get("folder", "")
    try:
        return Ledger.load(folder)
    except LedgerError as exc:
        raise DocsiteError(f"the published run {run.get('name')!r} is unreadable ({exc}); {REDO}") from None


def results(ref_dir: Path | None, manifest: Mapping[str, Any] | None = None) -> dict[str, Result]:
    """Task id → its outcome in the newest published run that selected it."""
    if ref_dir is None:
        return {}
    manifest = load_manifest(ref_dir) if manifest is None else manifest
    found: dict[str, Result] = {}
    for run in manifest.get("runs", []):
        ledger = run_ledger(ref_dir, run)
        for record in ledger.tasks:
            if record.selected:
                found[record.id] = Result(run, record, ledger.run_dir / record.output)
    return found
