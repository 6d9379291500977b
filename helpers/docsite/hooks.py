"""The MkDocs hooks of the runbook site (``mkdocs.yml`` → ``docs/hooks/runbook.py`` re-exports them).

* :func:`on_config` replaces the nav entries ``registry:phase1`` / ``registry:phase2`` with one page
  per task, in the order the runner executes them (:mod:`helpers.docsite.taskpages`).
* :func:`on_files` adds those pages as files: the task's notebook (where it lives, in ``notebooks/``,
  or its executed copy in the published reference run when that is fresh), or a page generated from
  the registry for a task whose notebook is not written yet; and the locally served Mermaid.
* :func:`on_page_markdown` expands the ``<!-- runbook:... -->`` markers (:mod:`helpers.docsite.markdown`).
* :func:`on_page_content` puts the banner under each notebook's title, rebuilds its table of contents
  and drops CDN scripts and dead links (:mod:`helpers.docsite.pagehtml`).
* :func:`on_serve` makes ``mkdocs serve`` rebuild when a notebook, the registry or the reference changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from helpers.core import tasks as registry
from helpers.core.paths import PROJECT_ROOT
from helpers.docsite import mermaid, pagehtml
from helpers.docsite.errors import DocsiteError
from helpers.docsite.markdown import expand_markers, missing_page_markdown
from helpers.docsite.published import reference_dir
from helpers.docsite.taskpages import TaskPage, expand_nav, task_pages

log = logging.getLogger("mkdocs.plugins.runbook")

_pages: dict[str, TaskPage] = {}  # this build's task pages, set by on_config


def _event_priority(priority: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
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
    for page in _pages.values():
        files.append(_task_file(page, config))
    for file in _mermaid_files(config):
        files.append(file)
    return files


def _task_file(page: TaskPage, config: Any) -> Any:
    from mkdocs.structure.files import File

    if page.source is None:
        return File.generated(config, page.src_uri, content=missing_page_markdown(page, _pages))
    # A real src_dir (not File.generated): mkdocs-jupyter's NotebookFile wrapper recomputes the
    # source path from src_dir + src_uri, which a generated file does not have. Notebooks and
    # published copies are both laid out as <folder>/phaseN/<stem>.ipynb, like src_uri.
    src_dir = page.source.parents[1]
    if (src_dir / page.src_uri).resolve() != page.source.resolve():
        raise DocsiteError(f"{page.source} is not laid out as <folder>/{page.src_uri}")
    return File(page.src_uri, str(src_dir), config["site_dir"], config["use_directory_urls"])


def _mermaid_files(config: Any) -> list[Any]:
    from mkdocs.structure.files import File

    try:
        script = mermaid.ensure_mermaid()
    except DocsiteError as exc:
        log.warning("runbook: Mermaid diagrams will not render offline: %s", exc)
        return []
    files = [File.generated(config, mermaid.MERMAID_SITE_PATH, abs_src_path=str(script))]
    licence = script.with_name("LICENSE")
    if licence.is_file():
        files.append(File.generated(config, mermaid.MERMAID_LICENSE_SITE_PATH, abs_src_path=str(licence)))
    return files


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """`mkdocs serve` rebuilds when a notebook, the registry or a published reference run changes."""
    for path in (PROJECT_ROOT / "notebooks", registry.REGISTRY, reference_dir()):
        if path is not None and path.exists():
            server.watch(str(path))
    return server


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "runbook:" not in markdown:
        return markdown
    try:
        return expand_markers(markdown, page.file.src_uri, _pages)
    except (DocsiteError, KeyError) as exc:
        log.warning("runbook: %s", exc)
        return markdown


def on_page_content(html_text: str, page: Any, config: Any, files: Any) -> str:
    task_page = next((p for p in _pages.values() if p.src_uri == page.file.src_uri), None)
    if task_page is None or task_page.source is None:
        return html_text
    from mkdocs.structure.toc import get_toc
    from mkdocs.utils import get_relative_url

    def url_of(src_uri: str) -> str:
        target = files.get_file_from_path(src_uri)
        if target is None:
            raise DocsiteError(f"no page {src_uri} in this build")
        return get_relative_url(target.url, page.file.url)

    page.toc = get_toc(pagehtml.html_toc_tokens(html_text))  # type: ignore[arg-type]
    site_paths = {f.dest_uri for f in files}
    body = pagehtml.neutralize_foreign_links(pagehtml.strip_cdn_scripts(html_text), page.file.url, site_paths)
    return pagehtml.insert_after_title(body, pagehtml.banner_html(task_page, _pages, url_of))
