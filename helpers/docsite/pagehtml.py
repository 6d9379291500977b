"""The HTML of a notebook's page, after mkdocs-jupyter renders it: banner, TOC, no CDN, no dead links.

* :func:`banner_html` goes under the title: the task's kind, prerequisites and troubleshooting link,
  and where the outputs below come from (a published run, and which) or why there are none.
* :func:`strip_cdn_scripts` drops the MathJax and Mermaid scripts nbconvert loads from CDNs.
* :func:`html_toc_tokens` rebuilds the sidebar from the headings' real ids.
* :func:`neutralize_foreign_links` turns links into the app repository into plain text.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Callable, Mapping
from typing import Any

from helpers.core import tasks as registry
from helpers.docsite.taskpages import KIND_TEXT, TaskPage

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
HEADING = re.compile(r"<h([1-6])\b[^>]*\bid=\"([^\"]+)\"[^>]*>(.*?)</h\1>", re.S)
LINK = re.compile(r"<a\b([^>]*?)\bhref=\"([^\"]*)\"([^>]*)>(.*?)</a>", re.S)
REFERENCE_RUN_COMMAND = ".venv/bin/python -m helpers.docsite reference-run"

UrlOf = Callable[[str], str]  # a docs page's src_uri → its URL relative to the page being built


def strip_cdn_scripts(html_text: str) -> str:
    return CDN_SCRIPT.sub("", html_text)


def banner_html(page: TaskPage, pages: Mapping[str, TaskPage], url_of: UrlOf) -> str:
    """The boxes under a notebook's title: what the task is, and where the outputs come from."""
    return task_box_html(page, pages, url_of) + outputs_box_html(page)


def task_box_html(page: TaskPage, pages: Mapping[str, TaskPage], url_of: UrlOf) -> str:
    task = page.task
    esc = html.escape

    def link(task_id: str) -> str:
        return f'<a href="{esc(url_of(pages[task_id].src_uri))}">{esc(registry.get(task_id).label)}</a>'

    needs = ", ".join(link(d) for d in task.needs) or "nothing: this is where the plan starts"
    trouble = esc(url_of("troubleshooting.md")) + "#" + page.anchor
    return (
        f'<div class="admonition info runbook-task"><p class="admonition-title">Task {esc(task.id)} · '
        f"{esc(task.kind)}</p><p>{esc(KIND_TEXT[task.kind])}.</p>"
        f"<p><strong>Needs:</strong> {needs}. <strong>If it fails:</strong> "
        f'<a href="{trouble}">troubleshooting for task {esc(task.id)}</a>.</p></div>'
    )


def outputs_box_html(page: TaskPage) -> str:
    esc = html.escape
    if page.state != "reference" or page.run is None:
        return (
            '<div class="admonition note runbook-outputs">'
            '<p class="admonition-title">Outputs are not included</p>'
            f"<p>This page shows the notebook without running it: {esc(page.reason)}. To publish the "
            f"outputs of a real run, run <code>{REFERENCE_RUN_COMMAND}</code> "
            "(needs a Docker engine) before building the docs.</p></div>"
        )
    run = page.run
    kind = str(run.get("kind", "reference"))
    title = "Expected output" if kind == "reference" else f"Expected output ({esc(kind)})"
    shown = [f"<code>{esc(p)}</code>" for p in run.get("placeholders", [])]
    paths = f"; the paths of the machine that ran it are shown as {_and(shown)}" if shown else ""
    return (
        f'<div class="admonition success runbook-outputs"><p class="admonition-title">{title}</p>'
        f"<p>The outputs below are real: a {esc(kind)} run executed this notebook {esc(page.reason)}, "
        f"{esc(run.get('setting', ''))}. Secrets are replaced with <code>[REDACTED]</code>{paths}.</p></div>"
    )


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


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
