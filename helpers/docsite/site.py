"""The published runbook: MkDocs hooks that build the site from the registry and the notebooks.

``mkdocs.yml`` loads ``docs/hooks/runbook.py``, which re-exports the hooks defined here:

* :func:`on_config` replaces the nav entries ``registry:phase1`` / ``registry:phase2`` with one page
  per task, in the order the runner executes them (:func:`helpers.core.tasks.order`).
* :func:`on_files` adds those pages as generated files: the task's notebook (read where it lives, in
  ``notebooks/``, or its executed reference copy when that is fresh), or, for a task whose notebook
  is not written yet, a page generated from the registry that says so. It also adds the locally
  served ``mermaid.min.js`` (no CDN is reachable).
* :func:`on_page_markdown` expands the ``<!-- runbook:... -->`` markers of the hand-written pages
  (dependency graphs, task tables, per-task troubleshooting anchors, secrets, production variables).
* :func:`on_page_content` puts a banner under each notebook's title (kind, prerequisites, where the
  outputs come from) and drops the CDN scripts nbconvert adds to notebook pages.

Expected outputs come from a *reference run* (``python -m helpers.docsite.site reference-run``): phase 1
executed with papermill against the real Docker engine, on the stand-in images, a temporary copy of
the sample app and a compose project of its own on free ports; every executed copy is scrubbed of
secrets (:func:`helpers.core.secrets.scrub`) before it is kept in ``.work/docs/reference/`` (git-ignored).
Without one (no engine, or ``RUNBOOK_DOCS_REFERENCE=off``) the notebooks are rendered bare, with a
note saying the outputs are not included.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import html
import json
import logging
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from helpers.core import tasks as registry
from helpers.core.paths import PROJECT_ROOT
from helpers.core.paths import WORK_DIR as PROJECT_WORK
from helpers.core.tasks import Task
from helpers.host.ports import free_port

log = logging.getLogger("mkdocs.plugins.runbook")

WORK_DIR = PROJECT_WORK / "docs"
DEFAULT_REFERENCE_DIR = WORK_DIR / "reference"
VENDOR_DIR = WORK_DIR / "vendor"
MANIFEST = "manifest.json"
ENV_REFERENCE = "RUNBOOK_DOCS_REFERENCE"  # a folder, or "off" to render bare notebooks
ENV_MERMAID = "RUNBOOK_MERMAID_JS"  # an existing mermaid.min.js to serve instead of fetching one

# Mermaid as Material for MkDocs expects it (it loads mermaid@11 from a CDN unless `mermaid` is defined).
MERMAID_VERSION = "11.17.2"
MERMAID_SITE_PATH = "assets/vendor/mermaid.min.js"
MERMAID_LICENSE_SITE_PATH = "assets/vendor/mermaid.LICENSE.txt"

NAV_MARKER = "registry:"
MARKER = re.compile(r"<!--\s*runbook:([a-z-]+)((?:\s+[\w.\-]+)*)\s*-->")
APPLIES = re.compile(r"<!--\s*applies-to:([\s\d.,]+)-->")
HEADING_WITH_ID = re.compile(r"^(#{2,4})\s+(.+?)\s*\{[^}]*#([\w-]+)[^}]*\}\s*$", re.M)

KIND_TEXT = {
    "manual": "manual: a person does the step, the notebook explains it and verifies the result",
    "automated": "automated: the notebook does the step (dry-run first if you like) and verifies it",
    "docs": "docs: the notebook edits the app's documentation, shows the diff and verifies it",
}

# Paths of the machine that made the reference run, replaced in its outputs (the banner says so).
PLACEHOLDER_APP = "/path/to/app"
PLACEHOLDER_WORK = "/path/to/reference-run"
PLACEHOLDER_ROOT = "/path/to/runbook"


class DocsiteError(RuntimeError):
    """The docs build or the reference run cannot go on; the message says what to do."""


# --------------------------------------------------------------------------------------------
# Task pages: which file each task's page is rendered from


State = Literal["reference", "bare", "stale", "missing"]


@dataclass(frozen=True)
class TaskPage:
    task: Task
    src_uri: str  # the page's path inside the site's docs, e.g. "phase1/1.04-start-services.ipynb"
    state: State
    source: Path | None  # the notebook rendered (reference copy or bare); None when missing
    title: str
    reason: str = ""  # why there are no outputs (bare/stale) or where they come from (reference)

    @property
    def anchor(self) -> str:
        return troubleshooting_anchor(self.task.id)


def troubleshooting_anchor(task_id: str) -> str:
    """The stable anchor of a task on the troubleshooting page: ``1.4`` → ``task-1-4``."""
    registry.get(task_id)
    return "task-" + task_id.replace(".", "-")


def troubleshooting_url(task_id: str) -> str:
    """Link target, relative to the docs root, that the runner's failure summary points at."""
    return f"troubleshooting.md#{troubleshooting_anchor(task_id)}"


def page_stem(task: Task) -> str:
    return f"{task.phase}/{task.stem}"


def notebook_title(path: Path) -> str | None:
    """The text of the notebook's first level-1 heading (``# ...`` in a markdown cell)."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        in_fence = False
        for line in text.splitlines():
            if line.lstrip().startswith(("```", "~~~")):
                in_fence = not in_fence
            if not in_fence and re.match(r"^#\s+\S", line):
                return re.sub(r"[*_`]", "", line[1:]).strip().rstrip("#").strip()
    return None


def nav_title(task: Task, heading: str | None) -> str:
    """The notebook's heading, prefixed with the task id when the heading lacks it."""
    if not heading:
        return task.label
    return heading if heading.split()[0].rstrip(".:") == task.id else f"{task.id} {heading}"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_dir() -> Path | None:
    value = os.environ.get(ENV_REFERENCE, "").strip()
    if value.lower() in ("off", "0", "no", "none", "false"):
        return None
    return Path(value) if value else DEFAULT_REFERENCE_DIR


def load_manifest(ref_dir: Path | None) -> dict[str, Any]:
    if ref_dir is None:
        return {}
    path = ref_dir / MANIFEST
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DocsiteError(
            f"{path} is not valid JSON ({exc}); delete it and run "
            "`python -m helpers.docsite.site reference-run` again"
        ) from None


def describe_run(manifest: Mapping[str, Any]) -> str:
    run = manifest.get("run", {})
    parts = [f"on {run.get('finished', '?')}"]
    if run.get("engine"):
        parts.append(f"Docker Engine {run['engine']}")
    if run.get("compose"):
        parts.append(f"Compose {run['compose']}")
    if run.get("images"):
        parts.append("images " + " and ".join(sorted(run["images"].values())))
    if run.get("commit"):
        parts.append(f"runbook commit {run['commit']}")
    return ", ".join(parts)


def task_page(task: Task, ref_dir: Path | None = None, manifest: Mapping[str, Any] | None = None) -> TaskPage:
    """Decide how a task's page is made: reference output, bare notebook, or 'not written yet'."""
    bare = PROJECT_ROOT / task.notebook
    stem = page_stem(task)
    if not bare.is_file():
        return TaskPage(task, f"{stem}.md", "missing", None, task.label, "the notebook is not written yet")
    title = nav_title(task, notebook_title(bare))
    manifest = manifest if manifest is not None else load_manifest(ref_dir)
    entry = manifest.get("tasks", {}).get(task.id)
    if ref_dir is None:
        reason = "reference outputs are switched off for this build"
    elif not entry:
        reason = "no reference run has executed this notebook (it needs a Docker engine)"
    elif entry.get("status") != "passed":
        reason = f"the reference run did not pass this task ({entry.get('status')}: {entry.get('error', '')})"
    else:
        executed = ref_dir / entry.get("file", "")
        if not executed.is_file():
            reason = f"the reference run's copy {executed} is gone"
        elif entry.get("source_sha256") != file_sha256(bare):
            return TaskPage(
                task,
                f"{stem}.ipynb",
                "stale",
                bare,
                title,
                "the notebook changed after the last reference run",
            )
        else:
            return TaskPage(task, f"{stem}.ipynb", "reference", executed, title, describe_run(manifest))
    return TaskPage(task, f"{stem}.ipynb", "bare", bare, title, reason)


def task_pages(ref_dir: Path | None = None) -> dict[str, TaskPage]:
    manifest = load_manifest(ref_dir)
    return {t.id: task_page(t, ref_dir, manifest) for t in registry.all_tasks()}


def relative_link(target_src_uri: str, from_src_uri: str) -> str:
    """A Markdown link target from one docs page to another (paths as in the docs folder)."""
    return posixpath.relpath(target_src_uri, posixpath.dirname(from_src_uri) or ".")


# --------------------------------------------------------------------------------------------
# Navigation


def expand_nav(nav: list[Any], pages: Mapping[str, TaskPage]) -> list[Any]:
    """Replace ``{"Title": "registry:phaseN"}`` entries with the phase's task pages, in run order."""
    out: list[Any] = []
    for item in nav:
        if isinstance(item, dict) and len(item) == 1:
            ((title, value),) = item.items()
            if isinstance(value, str) and value.startswith(NAV_MARKER):
                phase = value[len(NAV_MARKER) :]
                try:
                    ordered = registry.order(phase)
                except KeyError as exc:
                    raise DocsiteError(
                        f"mkdocs.yml nav: {value!r} names no phase of the registry ({exc})"
                    ) from None
                out.append({title: [{pages[t.id].title: pages[t.id].src_uri} for t in ordered]})
                continue
            if isinstance(value, list):
                out.append({title: expand_nav(value, pages)})
                continue
        out.append(item)
    return out


# --------------------------------------------------------------------------------------------
# Generated Markdown


def task_link(
    task_id: str, pages: Mapping[str, TaskPage], from_src_uri: str, label: str | None = None
) -> str:
    page = pages[task_id]
    return f"[{label or page.task.label}]({relative_link(page.src_uri, from_src_uri)})"


def missing_page_markdown(page: TaskPage, pages: Mapping[str, TaskPage]) -> str:
    """The honest page of a task whose notebook does not exist yet: registry facts only."""
    task = page.task
    here = page.src_uri
    phase = registry.phases()[task.phase]
    needs = (
        ", ".join(task_link(d, pages, here) for d in task.needs) or "nothing: this is where the plan starts"
    )
    needed_by = sorted((t for t in registry.all_tasks() if task.id in t.needs), key=lambda t: t.key)
    by = ", ".join(task_link(t.id, pages, here) for t in needed_by) or "nothing: this is the last task"
    trouble = relative_link("troubleshooting.md", here) + f"#{page.anchor}"
    return "\n".join(
        [
            f"# {task.label}",
            "",
            '!!! warning "Not written yet"',
            f"    The notebook of this task, `{task.notebook.as_posix()}`, does not exist yet. This page is",
            "    generated from the task registry (`helpers/core/tasks.yaml`) so that the plan reads end to"
            " end;",
            "    it has no steps and no outputs. When the notebook lands, the next build renders it here, at",
            "    the same address.",
            "",
            "| | |",
            "|---|---|",
            f"| Task | {task.id} |",
            f"| Phase | {phase.title} |",
            f"| Kind | {KIND_TEXT[task.kind]} |",
            f"| Needs | {needs} |",
            f"| Needed by | {by} |",
            f"| Notebook | `{task.notebook.as_posix()}` (not written yet) |",
            f"| When it fails | [Troubleshooting, task {task.id}]({trouble}) |",
            "",
        ]
    )


def graph_markdown(phase: str) -> str:
    return f"```mermaid\n{registry.mermaid(phase)}\n```"


def tasks_table_markdown(phase: str, pages: Mapping[str, TaskPage], from_src_uri: str) -> str:
    rows = ["| step | task | kind | needs | page |", "|---|---|---|---|---|"]
    for n, task in enumerate(registry.order(phase), start=1):
        page = pages[task.id]
        needs = ", ".join(task_link(d, pages, from_src_uri, d) for d in task.needs) or "—"
        status = {
            "reference": "notebook, with reference outputs",
            "bare": "notebook",
            "stale": "notebook",
            "missing": "not written yet",
        }[page.state]
        rows.append(f"| {n} | {task_link(task.id, pages, from_src_uri)} | {task.kind} | {needs} | {status} |")
    return "\n".join(rows)


def levels_markdown(phase: str) -> str:
    lines = []
    for n, group in enumerate(registry.levels(phase), start=1):
        ids = ", ".join(t.id for t in group)
        lines.append(f"{n}. {ids}" + (" (independent of each other)" if len(group) > 1 else ""))
    return "\n".join(lines)


@dataclass
class GuideSection:
    title: str
    anchor: str
    applies_to: tuple[str, ...]


def guide_sections(markdown: str) -> list[GuideSection]:
    """Headings with an explicit ``{#anchor}`` followed by an ``<!-- applies-to: 1.3 1.4 -->`` comment."""
    sections = []
    matches = list(HEADING_WITH_ID.finditer(markdown))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(markdown)
        body = markdown[m.end() : end]
        applies = APPLIES.search(body)
        if applies:
            ids = tuple(x for x in re.split(r"[\s,]+", applies.group(1).strip()) if x)
            for task_id in ids:
                registry.get(task_id)  # raises UnknownTask on a typo
            sections.append(GuideSection(m.group(2).strip(), m.group(3), ids))
    return sections


GENERIC_ADVICE = {
    "manual": "This task is done by hand; its notebook verifies the result. Redo the step the ❌ row names, "
    "then run the notebook again (or `runbook resume`).",
    "automated": "Read the ❌ row of the failing verification: its *next step* says what to fix. The task is "
    "idempotent: fix the cause and run it again (`runbook resume` continues the phase from here).",
    "docs": "The notebook changes the app's documentation: check `app_dir` points at the app repository and "
    "that the file is not open in an editor with unsaved changes; run it with `dry_run=True` to see the "
    "diff.",
}


def troubleshooting_by_task_markdown(markdown: str, pages: Mapping[str, TaskPage], from_src_uri: str) -> str:
    sections = guide_sections(markdown)
    out: list[str] = []
    for phase in registry.phases():
        out.append(f"### {registry.phases()[phase].title} {{#by-task-{phase}}}")
        out.append("")
        for task in registry.order(phase):
            page = pages[task.id]
            out.append(f"#### {task.label} {{#{page.anchor}}}")
            out.append("")
            out.append(
                f"{task_link(task.id, pages, from_src_uri, 'The task page')} ({task.kind}). "
                + GENERIC_ADVICE[task.kind]
            )
            related = [s for s in sections if task.id in s.applies_to]
            if related:
                out.append("")
                out.append(
                    "Problems seen at this step: "
                    + ", ".join(f"[{s.title}](#{s.anchor})" for s in related)
                    + "."
                )
            out.append("")
    return "\n".join(out)


def secrets_markdown() -> str:
    from helpers.core.secrets import SECRETS

    rows = ["| name | what it is | where it comes from |", "|---|---|---|"]
    rows += [f"| `{s.name}` | {s.purpose} | {s.source} |" for s in SECRETS.values()]
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# Production environment variables (Coolify, task 2.16): one list, read by the docs page


from helpers.app.prodenv import (  # noqa: E402, F401  (moved; the split of this module follows)
    NOT_IN_PRODUCTION,
    PRODUCTION_ENV,
    EnvVar,
    not_in_production_markdown,
    production_env_markdown,
)

# --------------------------------------------------------------------------------------------
# Mermaid, served from the site


def mermaid_cache() -> Path:
    return VENDOR_DIR / f"mermaid-{MERMAID_VERSION}"


def ensure_mermaid(cache: Path | None = None, npm: str = "npm") -> Path:
    """``mermaid.min.js`` at the pinned version: from ``RUNBOOK_MERMAID_JS``, the cache, or ``npm pack``."""
    override = os.environ.get(ENV_MERMAID)
    if override:
        path = Path(override)
        if not path.is_file():
            raise DocsiteError(
                f"{ENV_MERMAID}={override} is not a file; unset it or point it at mermaid.min.js"
            )
        return path
    cache = cache or mermaid_cache()
    target = cache / "mermaid.min.js"
    if target.is_file():
        return target
    if shutil.which(npm) is None:
        raise DocsiteError(
            f"mermaid.min.js {MERMAID_VERSION} is not cached in {cache} and `{npm}` is not installed; "
            "install Node.js/npm (apt-get install npm) and run"
            f" `python -m helpers.docsite.site fetch-mermaid`"
        )
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rb-docs-npm-") as tmp:
        proc = subprocess.run(
            [npm, "pack", f"mermaid@{MERMAID_VERSION}", "--silent"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=600,
        )
        tarballs = list(Path(tmp).glob("mermaid-*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise DocsiteError(
                f"`npm pack mermaid@{MERMAID_VERSION}` failed "
                f"({(proc.stderr or proc.stdout).strip()[-300:]}); "
                "check that the npm registry is reachable (npm config get registry)"
            )
        extract_mermaid(tarballs[0], cache)
    return target


def extract_mermaid(tarball: Path, cache: Path) -> Path:
    """Take only ``dist/mermaid.min.js`` and the licence out of the npm tarball."""
    wanted = {"package/dist/mermaid.min.js": "mermaid.min.js", "package/LICENSE": "LICENSE"}
    found = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if member.name in wanted and member.isfile():
                data = tar.extractfile(member)
                if data is not None:
                    found[wanted[member.name]] = data.read()
    if "mermaid.min.js" not in found:
        raise DocsiteError(
            f"{tarball.name} has no package/dist/mermaid.min.js; is it really the mermaid package?"
        )
    cache.mkdir(parents=True, exist_ok=True)
    for name, data in found.items():
        tmp = cache / f".{name}.part"
        tmp.write_bytes(data)
        tmp.replace(cache / name)
    return cache / "mermaid.min.js"


# --------------------------------------------------------------------------------------------
# MkDocs hooks (re-exported by docs/hooks/runbook.py)

_pages: dict[str, TaskPage] = {}


def _event_priority(priority: int):
    try:
        from mkdocs.plugins import event_priority
    except ImportError:  # pragma: no cover - mkdocs is a dependency
        return lambda f: f
    return event_priority(priority)


def on_config(config: Any) -> Any:
    global _pages
    from mkdocs.exceptions import PluginError

    try:
        _pages = task_pages(reference_dir())
        config["nav"] = expand_nav(config["nav"] or [], _pages)
    except DocsiteError as exc:
        raise PluginError(f"runbook docs: {exc}") from None
    counts: dict[str, int] = {}
    for page in _pages.values():
        counts[page.state] = counts.get(page.state, 0) + 1
    log.info("runbook: task pages %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return config


@_event_priority(100)  # before mkdocs-jupyter, which turns .ipynb files into pages
def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for page in _pages.values():
        if page.source is None:
            files.append(File.generated(config, page.src_uri, content=missing_page_markdown(page, _pages)))
        else:
            # A real src_dir (not File.generated): mkdocs-jupyter's NotebookFile wrapper recomputes the
            # source path from src_dir + src_uri, which a generated file does not have. Notebooks and
            # reference copies are both laid out as <folder>/phaseN/<stem>.ipynb, like src_uri.
            src_dir = page.source.parents[1]
            if (src_dir / page.src_uri).resolve() != page.source.resolve():
                raise DocsiteError(f"{page.source} is not laid out as <folder>/{page.src_uri}")
            files.append(File(page.src_uri, str(src_dir), config["site_dir"], config["use_directory_urls"]))
    try:
        mermaid = ensure_mermaid()
    except DocsiteError as exc:
        log.warning("runbook: Mermaid diagrams will not render offline: %s", exc)
    else:
        files.append(File.generated(config, MERMAID_SITE_PATH, abs_src_path=str(mermaid)))
        licence = mermaid.with_name("LICENSE")
        if licence.is_file():
            files.append(File.generated(config, MERMAID_LICENSE_SITE_PATH, abs_src_path=str(licence)))
    return files


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """`mkdocs serve` rebuilds when a notebook, the registry or a reference copy changes."""
    for path in (PROJECT_ROOT / "notebooks", registry.REGISTRY, reference_dir()):
        if path is not None and path.exists():
            server.watch(str(path))
    return server


def expand_markers(markdown: str, src_uri: str, pages: Mapping[str, TaskPage]) -> str:
    def replace(m: re.Match[str]) -> str:
        name, args = m.group(1), m.group(2).split()
        if name == "graph":
            return graph_markdown(args[0])
        if name == "tasks":
            return tasks_table_markdown(args[0], pages, src_uri)
        if name == "levels":
            return levels_markdown(args[0])
        if name == "troubleshooting-by-task":
            return troubleshooting_by_task_markdown(markdown, pages, src_uri)
        if name == "secrets":
            return secrets_markdown()
        if name == "production-env":
            return production_env_markdown()
        if name == "not-in-production":
            return not_in_production_markdown()
        if name == "task-count":
            return str(len(registry.in_phase(args[0])) if args else len(registry.all_tasks()))
        raise DocsiteError(f"{src_uri}: unknown marker <!-- runbook:{name} -->")

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "runbook:" not in markdown:
        return markdown
    try:
        return expand_markers(markdown, page.file.src_uri, _pages)
    except (DocsiteError, KeyError) as exc:
        log.warning("runbook: %s", exc)
        return markdown


# nbconvert adds MathJax and an ES-module Mermaid from CDNs to every notebook page; nothing here
# needs them and no CDN is reachable, so they go (Mermaid is served by the site itself).
_NOT_END = r"(?:(?!</script>).)*?"
CDN_SCRIPT = re.compile(
    r"<script[^>]*\bsrc=\"(?:https?://[^\"]*)?\"[^>]*>\s*</script>"  # MathJax (src may be empty)
    rf"|<script type=\"module\">{_NOT_END}https?://{_NOT_END}</script>"  # nbconvert's ES-module Mermaid
    r"|<script type=\"text/x-mathjax-config\">.*?</script>"
    r"|<!-- (?:Load mathjax|MathJax configuration|End of mathjax configuration) -->",
    re.S,
)


def strip_cdn_scripts(html_text: str) -> str:
    return CDN_SCRIPT.sub("", html_text)


def banner_html(page: TaskPage, url_of: Any) -> str:
    """The box under a notebook's title: kind, prerequisites, troubleshooting, where outputs come from."""
    task = page.task
    esc = html.escape

    def link(task_id: str) -> str:
        return f'<a href="{esc(url_of(_pages[task_id].src_uri))}">{esc(registry.get(task_id).label)}</a>'

    needs = ", ".join(link(d) for d in task.needs) or "nothing: this is where the plan starts"
    trouble = esc(url_of("troubleshooting.md")) + "#" + page.anchor
    meta = (
        f'<div class="admonition info runbook-task"><p class="admonition-title">Task {esc(task.id)} · '
        f"{esc(task.kind)}</p><p>{esc(KIND_TEXT[task.kind])}.</p>"
        f"<p><strong>Needs:</strong> {needs}. <strong>If it fails:</strong> "
        f'<a href="{trouble}">troubleshooting for task {esc(task.id)}</a>.</p></div>'
    )
    if page.state == "reference":
        outputs = (
            '<div class="admonition success runbook-outputs"><p class="admonition-title">Expected output</p>'
            f"<p>The outputs below are real: a reference run executed this notebook {esc(page.reason)}, "
            "on a temporary copy of the sample app and with a compose project of its own on free ports "
            "(so ports and names differ from the defaults). Secrets are replaced with "
            "<code>[REDACTED]</code>; the "
            f"run's temporary paths are shown as <code>{PLACEHOLDER_APP}</code> and "
            f"<code>{PLACEHOLDER_WORK}</code>.</p></div>"
        )
    else:
        outputs = (
            '<div class="admonition note runbook-outputs">'
            '<p class="admonition-title">Outputs are not included</p>'
            f"<p>This page shows the notebook without running it: {esc(page.reason)}. To publish the "
            "outputs of a real run, run <code>.venv/bin/python -m helpers.docsite.site reference-run</code> "
            "(needs a Docker engine) before building the docs.</p></div>"
        )
    return meta + outputs


HEADING = re.compile(r"<h([1-6])\b[^>]*\bid=\"([^\"]+)\"[^>]*>(.*?)</h\1>", re.S)


def html_toc_tokens(html_text: str, max_level: int = 3) -> list[dict[str, Any]]:
    """Table-of-contents tokens from the headings' real ids.

    mkdocs-jupyter derives the TOC from a Markdown conversion whose slugs differ from nbconvert's ids
    when a heading holds inline code (``## Step 3: the `~/.ssh/config` entry``), which leaves
    broken ``#anchors`` in the sidebar; the rendered HTML is the truth.
    """
    root: list[dict[str, Any]] = []
    stack: list[dict[str, Any]] = []
    for m in HEADING.finditer(html_text):
        level = int(m.group(1))
        if level > max_level:
            continue
        inner = re.sub(r"<a class=\"anchor-link\".*?</a>", "", m.group(3), flags=re.S)
        name = html.escape(html.unescape(re.sub(r"<[^>]+>", "", inner)).strip())
        token = {"level": level, "id": html.unescape(m.group(2)), "name": name, "children": []}
        while stack and stack[-1]["level"] >= level:
            stack.pop()
        (stack[-1]["children"] if stack else root).append(token)
        stack.append(token)
    return root


LINK = re.compile(r"<a\b([^>]*?)\bhref=\"([^\"]*)\"([^>]*)>(.*?)</a>", re.S)


def neutralize_foreign_links(html_text: str, page_url: str, site_paths: set[str]) -> str:
    """Relative links that lead nowhere on this site become plain text with the target as a tooltip.

    Notebooks quote the app repository (a README line ``[VM setup](docs/vm-setup.md)`` in a scan's
    table, a rendered diff): such paths are relative to the app, not to the site, and would 404.
    """
    base = page_url if page_url.endswith("/") or not page_url else posixpath.dirname(page_url) + "/"

    def fix(m: re.Match[str]) -> str:
        href = html.unescape(m.group(2))
        target = href.split("#", 1)[0].split("?", 1)[0]
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:|^//", href, re.I) or href.startswith("/"):
            return m.group(0)  # fragment-only, absolute or external: not ours to judge here
        path = posixpath.normpath(posixpath.join(base, target)).lstrip("./")
        if path == "." or {path, path.rstrip("/") + "/index.html"} & site_paths:
            return m.group(0)
        title = html.escape(f"{href} (a path in the app repository, not a page of this site)")
        return f'<span class="runbook-foreign-link" title="{title}">{m.group(4)}</span>'

    return LINK.sub(fix, html_text)


def insert_after_title(content: str, block: str) -> str:
    m = re.search(r"</h1>", content)
    if not m:
        return block + content
    return content[: m.end()] + block + content[m.end() :]


def on_page_content(html_text: str, page: Any, config: Any, files: Any) -> str:
    task_page_ = next((p for p in _pages.values() if p.src_uri == page.file.src_uri), None)
    if task_page_ is None or task_page_.source is None:
        return html_text
    from mkdocs.utils import get_relative_url

    def url_of(src_uri: str) -> str:
        target = files.get_file_from_path(src_uri)
        if target is None:
            raise DocsiteError(f"no page {src_uri} in this build")
        return get_relative_url(target.url, page.file.url)

    from mkdocs.structure.toc import get_toc

    page.toc = get_toc(html_toc_tokens(html_text))  # type: ignore[arg-type]
    site_paths = {f.dest_uri for f in files}
    body = neutralize_foreign_links(strip_cdn_scripts(html_text), page.file.url, site_paths)
    return insert_after_title(body, banner_html(task_page_, url_of))


# --------------------------------------------------------------------------------------------
# The reference run: phase 1 for real, scrubbed, kept for the docs build


@dataclass
class RunContext:
    work: Path
    app_dir: Path
    project: str
    env: dict[str, str]
    secret_values: list[str] = field(default_factory=list)


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        proc = _run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "docker info failed"
        return f"no Docker engine answers ({last})"
    return None


def image_present(name: str) -> bool:
    return _run(["docker", "image", "inspect", name]).returncode == 0


STANDIN_IMAGES = {"POSTGRES_IMAGE": "runbook-standin/postgres:15", "REDIS_IMAGE": "runbook-standin/redis:7"}
OFFICIAL_IMAGES = {"POSTGRES_IMAGE": "postgres:15-alpine", "REDIS_IMAGE": "redis:7-alpine"}


def pick_images() -> dict[str, str]:
    """The service images for the run: the environment's, else the stand-ins, else the official ones."""
    chosen = {}
    for var, standin in STANDIN_IMAGES.items():
        candidates = [os.environ.get(var), standin, OFFICIAL_IMAGES[var]]
        image = next((c for c in candidates if c and image_present(c)), None)
        if image is None:
            raise DocsiteError(
                f"none of the images {', '.join(c for c in candidates if c)} is present locally and "
                "no registry "
                "is reachable; build the stand-ins with `bash scripts/standins/build.sh`, or set "
                f"{var} to an image you have"
            )
        chosen[var] = image
    return chosen


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cleanup_project(project: str) -> list[str]:
    """Remove every container, volume and network of the compose project (by label). Returns what went."""
    removed: list[str] = []
    label = f"label=com.docker.compose.project={project}"
    for kind, ls, rm in (
        ("container", ["docker", "ps", "-aq", "--filter", label], ["docker", "rm", "-f", "-v"]),
        ("container", ["docker", "ps", "-aq", "--filter", f"name=^{project}"], ["docker", "rm", "-f", "-v"]),
        ("volume", ["docker", "volume", "ls", "-q", "--filter", label], ["docker", "volume", "rm", "-f"]),
        ("network", ["docker", "network", "ls", "-q", "--filter", label], ["docker", "network", "rm"]),
    ):
        ids = _run(ls).stdout.split()
        if ids:
            _run(rm + ids)
            removed += [f"{kind} {i}" for i in ids]
    return removed


def declared_parameters(notebook: Path) -> dict[str, Any]:
    import papermill

    # papermill cannot type defaults like `os.environ.get(...)` and warns per line; the names are all we need
    logging.getLogger("papermill.translators").setLevel(logging.ERROR)
    return papermill.inspect_notebook(str(notebook))


# Parameters the reference run passes when a notebook declares them (everything else comes from the
# environment variables of CONTRIBUTING.md, set by the run). Destructive ones stay off except where
# the reference run owns the target: its own temporary copy of the app.
def reference_parameters(ctx: RunContext, declared: Mapping[str, Any]) -> dict[str, Any]:
    wanted: dict[str, Any] = {
        "app_dir": str(ctx.app_dir),
        "dry_run": False,
        "commit": True,  # 1.14 commits only in the run's own copy of the app
        "rewrite_env": True,  # 1.9 may fix the VM addresses in that copy's own .env
    }
    return {k: v for k, v in wanted.items() if k in declared}


def scrub_value(value: Any, fix: Any) -> Any:
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, list):
        return [scrub_value(v, fix) for v in value]
    if isinstance(value, dict):
        return {k: scrub_value(v, fix) for k, v in value.items()}
    return value


def scrub_notebook(nb: dict[str, Any], secret_values: list[str], paths: Mapping[str, str]) -> dict[str, Any]:
    """Every string of the notebook (sources, outputs, metadata) scrubbed of secrets and local paths."""
    from helpers.core.secrets import known_values, scrub

    values = sorted(set(secret_values) | set(known_values()), key=len, reverse=True)
    ordered = sorted(paths.items(), key=lambda kv: len(kv[0]), reverse=True)

    def fix(text: str) -> str:
        text = scrub(text, values)
        for real, shown in ordered:
            text = text.replace(real, shown)
        return text

    return scrub_value(nb, fix)


def leaked(folder: Path, secret_values: Iterable[str]) -> list[str]:
    """Files under ``folder`` that contain one of the values (the run's own proof of scrubbing)."""
    values = [v for v in secret_values if len(v) >= 4]
    hits = []
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            hits += [f"{path}: secret #{i}" for i, v in enumerate(values) if v in text]
    return hits


def _versions() -> dict[str, str]:
    engine = _run(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip()
    compose = _run(["docker", "compose", "version", "--short"]).stdout.strip()
    commit = _run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT).stdout.strip()
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT).stdout.strip()
    return {"engine": engine, "compose": compose, "commit": commit + ("+changes" if dirty else "")}


def _execute(notebook: Path, out: Path, parameters: Mapping[str, Any], timeout: int) -> None:
    import papermill

    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters=dict(parameters),
        kernel_name="python3",
        cwd=str(PROJECT_ROOT),
        progress_bar=False,
        log_output=False,
        request_save_on_cell_execute=False,
        execution_timeout=timeout,
    )


def _error_text(exc: BaseException) -> str:
    name = getattr(exc, "ename", type(exc).__name__)
    value = getattr(exc, "evalue", str(exc))
    return f"{name}: {value}".strip()[:500]


# A task is not run when one of its prerequisites (direct or not) ended like this.
BLOCKING = {"failed": "failed", "missing": "notebook not written yet", "not-run": "not run"}


def blocked_reason(blocked: list[str], results: Mapping[str, Mapping[str, Any]]) -> str:
    """``1.6, 1.7 (notebook not written yet); 1.4 (failed)``: the root causes, not the tasks they stopped."""
    groups: dict[str, list[str]] = {}
    for dep in blocked:
        status = results[dep]["status"]
        if status != "not-run":
            groups.setdefault(BLOCKING[status], []).append(dep)
    return "; ".join(f"{', '.join(ids)} ({why})" for why, ids in groups.items()) or "an earlier task"


def reference_run(
    phase: str = "phase1",
    only: Iterable[str] | None = None,
    out_dir: Path | None = None,
    keep_work: bool = False,
    timeout: int = 600,
    echo: Any = print,
) -> dict[str, Any]:
    """Execute the phase's notebooks for real, scrub them, keep them for the docs; return the manifest."""
    problem = engine_problem()
    if problem:
        raise DocsiteError(
            f"cannot make a reference run: {problem}. Without one, the docs render the notebooks "
            "without outputs (and say so); start the engine and run this again"
        )
    out_dir = out_dir or reference_dir() or DEFAULT_REFERENCE_DIR
    wanted = {registry.get(t).id for t in only} if only else None
    tasks = [t for t in registry.order(phase) if wanted is None or t.id in wanted]
    images = pick_images()

    from helpers.core.secrets import generate

    work = Path(tempfile.mkdtemp(prefix="rb-docs-ref-"))
    project = work.name.lower().replace("_", "-")
    password = generate(18)
    ctx = RunContext(work=work, app_dir=work / "app", project=project, env={}, secret_values=[password])
    from helpers.runner import sampleapp
    from helpers.services import apprun

    web_port = free_port()
    ctx.env = {
        **images,
        "COMPOSE_PROJECT_NAME": project,
        "POSTGRES_PORT": str(free_port()),
        "REDIS_PORT": str(free_port()),
        "POSTGRES_PASSWORD": password,
        "RUNBOOK_DRY_RUN": "",
        "RUNBOOK_ALLOW_COMMIT": "1",  # 1.14 commits, in the run's own copy of the app only
        "RUNBOOK_SECRETS_FILE": str(work / "secrets.env"),
        apprun.ENV_LOG_DIR: str(work / "app-logs"),
        "RUNBOOK_HEALTH_URL": f"http://localhost:{web_port}/api/health",
        **sampleapp.environment(ctx.app_dir, port=web_port),  # RUNBOOK_APP_DIR, RUNBOOK_APP_COMMANDS
    }
    executed_dir = work / "executed"
    executed_dir.mkdir()
    paths = {
        str(ctx.app_dir): PLACEHOLDER_APP,
        str(work): PLACEHOLDER_WORK,
        str(PROJECT_ROOT): PLACEHOLDER_ROOT,
    }
    results: dict[str, dict[str, Any]] = {}
    started = _dt.datetime.now(_dt.UTC)
    try:
        with patched_environ(ctx.env):
            sampleapp.prepare(ctx.app_dir)
            # the developer's own .env (git-ignored) with the local URLs, as
            # `helpers.runner.sampleapp prepare`
            # writes it for `make phase1`: task 1.5 reads it before task 1.9 rewrites .env.example
            sampleapp.write_local_env(ctx.app_dir)
            for n, task in enumerate(tasks, start=1):
                bare = PROJECT_ROOT / task.notebook
                blocked = sorted(
                    (d for d in registry.ancestors(task.id) if results.get(d, {}).get("status") in BLOCKING),
                    key=lambda d: registry.get(d).key,
                )
                if not bare.is_file():
                    results[task.id] = {"status": "missing"}
                    echo(f"[{n}/{len(tasks)}] {task.label}: notebook not written yet, skipped")
                    continue
                if blocked:
                    why = blocked_reason(blocked, results)
                    results[task.id] = {"status": "not-run", "error": f"needs {why}"}
                    echo(f"[{n}/{len(tasks)}] {task.label}: not run (needs {why})")
                    continue
                echo(f"[{n}/{len(tasks)}] {task.label} ...")
                executed = executed_dir / f"{task.stem}.ipynb"
                t0 = time.monotonic()
                entry: dict[str, Any] = {"source_sha256": file_sha256(bare)}
                try:
                    params = reference_parameters(ctx, declared_parameters(bare))
                    entry["parameters"] = {
                        k: scrub_notebook({"v": v}, ctx.secret_values, paths)["v"] for k, v in params.items()
                    }
                    _execute(bare, executed, params, timeout)
                    entry["status"] = "passed"
                except Exception as exc:  # papermill raises PapermillExecutionError; keep going with the rest
                    entry["status"] = "failed"
                    entry["error"] = scrub_notebook({"e": _error_text(exc)}, ctx.secret_values, paths)["e"]
                entry["seconds"] = round(time.monotonic() - t0, 1)
                if executed.is_file():
                    nb = json.loads(executed.read_text(encoding="utf-8"))
                    nb = scrub_notebook(nb, ctx.secret_values, paths)
                    target = out_dir / task.phase / f"{task.stem}.ipynb"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
                    entry["file"] = target.relative_to(out_dir).as_posix()
                results[task.id] = entry
                echo(
                    f"    {entry['status']} in {entry['seconds']} s"
                    + (f": {entry['error']}" if "error" in entry else "")
                )
    finally:
        stopped = apprun.stop_recorded(Path(ctx.env[apprun.ENV_LOG_DIR]))  # app processes a kernel left
        if stopped:
            echo(f"stopped {len(stopped)} app processes left running: {', '.join(stopped)}")
        removed = cleanup_project(project)
        if removed:
            echo(f"cleaned up {len(removed)} Docker objects of compose project {project}")
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)

    manifest = load_manifest(out_dir) if wanted else {}
    manifest.setdefault("tasks", {})
    if not wanted:  # a full run replaces this phase's entries
        manifest["tasks"] = {k: v for k, v in manifest["tasks"].items() if registry.get(k).phase != phase}
    manifest["tasks"].update(results)
    manifest["run"] = {
        **_versions(),
        "phase": phase,
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "finished": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "images": images,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    hits = leaked(out_dir, ctx.secret_values)
    if hits:
        raise DocsiteError(
            "secret values reached the reference outputs, which must not be published: "
            + "; ".join(hits)
            + f". Delete {out_dir} and fix the scrubbing"
        )
    return manifest


# --------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.docsite.site", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ref = sub.add_parser(
        "reference-run", help="execute a phase for real and keep scrubbed copies for the docs"
    )
    ref.add_argument("--phase", default="phase1", choices=list(registry.phases()))
    ref.add_argument("--only", nargs="+", metavar="ID", help="only these task ids (merged into the last run)")
    ref.add_argument("--out", type=Path, help=f"output folder (default {DEFAULT_REFERENCE_DIR})")
    ref.add_argument("--keep-work", action="store_true", help="keep the temporary app copy and raw outputs")
    ref.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    ref.add_argument(
        "--if-engine",
        action="store_true",
        help="without a Docker engine, say so and exit 0 (the build then renders bare notebooks)",
    )
    sub.add_parser("fetch-mermaid", help=f"cache mermaid.min.js {MERMAID_VERSION} from the npm registry")
    sub.add_parser("status", help="how each task page would be rendered")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch-mermaid":
            print(ensure_mermaid())
        elif args.command == "status":
            for task_id, page in task_pages(reference_dir()).items():
                print(f"{task_id:>5}  {page.state:<9}  {page.src_uri}  {page.reason}")
        else:
            problem = engine_problem()
            if problem and args.if_engine:
                print(f"no reference run: {problem}; the docs will show the notebooks without outputs")
                return 0
            manifest = reference_run(args.phase, args.only, args.out, args.keep_work, args.timeout)
            statuses = [v["status"] for v in manifest["tasks"].values()]
            print(", ".join(f"{s}: {statuses.count(s)}" for s in sorted(set(statuses))))
            return 1 if "failed" in statuses else 0
    except DocsiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
