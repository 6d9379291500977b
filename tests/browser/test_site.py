"""The published runbook in a real browser: Debian's Chromium, headless, driven by Playwright.

The site is built with ``mkdocs build --strict`` and served on 127.0.0.1; screenshots of the home
page and of a task page are kept as CI artifacts. The link crawl needs no browser (plain HTTP).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

import pytest
from testsupport import unavailable

from helpers.core import secrets, tasks
from helpers.core.paths import PROJECT_ROOT
from helpers.docsite.published import DEFAULT_REHEARSAL_DIR, load_manifest, reference_dir
from helpers.docsite.taskpages import notebook_title

TASK_LINK = re.compile(r"^(\d+\.\d+) ")


def ordered_ids() -> list[str]:
    return [t.id for phase in ("phase1", "phase2") for t in tasks.order(phase)]


def written_task() -> tasks.Task:
    for task in tasks.order("phase1") + tasks.order("phase2"):
        if (PROJECT_ROOT / task.notebook).is_file():
            return task
    raise AssertionError("no task notebook is written yet: nothing to show on a notebook page")


def first_code_line(notebook: Path) -> str:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            lines = [line.strip() for line in source.splitlines() if line.strip()]
            if lines:
                return lines[0]
    raise AssertionError(f"{notebook} has no code")


@pytest.mark.browser
def test_home_page_loads(page, site_url, artifacts):
    page.goto(site_url)
    assert "Implementation 3 runbook" in page.title()
    assert (
        page.locator("article h1").first.inner_text().replace("¶", "").strip() == "Implementation 3 runbook"
    )
    code = " ".join(page.locator("article pre").all_inner_texts())
    assert "make phase1" in code and "make test" in code
    copy = page.locator("article button[data-md-type=copy], article button.md-clipboard")
    assert copy.count() == page.locator("article pre > code").count() > 0, "code copy buttons are missing"
    page.screenshot(path=str(artifacts / "docs-home.png"), full_page=True)
    assert page.errors == []


@pytest.mark.browser
def test_nav_lists_all_33_tasks_in_registry_order(page, site_url):
    page.goto(site_url)
    links = page.locator("nav.md-nav--primary a.md-nav__link")
    found = []
    for text, href in zip(
        links.all_text_contents(), [a.get_attribute("href") for a in links.all()], strict=True
    ):
        m = TASK_LINK.match(text.strip())
        if m:
            found.append((m.group(1), href))
    assert [task_id for task_id, _ in found] == ordered_ids()
    for task_id, href in found:
        task = tasks.get(task_id)
        assert href.rstrip("/").endswith(f"{task.phase}/{task.stem}"), (task_id, href)
    # the phase sections open and show their tasks
    page.get_by_text("Phase 1: local services on Docker", exact=True).first.click()
    first = tasks.order("phase1")[0]
    assert page.locator("nav.md-nav--primary a.md-nav__link", has_text=first.id + " ").first.is_visible()


@pytest.mark.browser
def test_a_notebook_page_shows_its_markdown_and_code(page, site_url, artifacts):
    task = written_task()
    notebook = PROJECT_ROOT / task.notebook
    page.goto(urljoin(site_url, f"{task.phase}/{task.stem}/"))
    title = notebook_title(notebook)
    assert title and page.locator(".jupyter-wrapper h1").first.inner_text().replace("¶", "").strip() == title
    assert page.locator(".jupyter-wrapper .jp-MarkdownOutput p").count() > 0
    code = "\n".join(page.locator(".jupyter-wrapper .jp-CodeCell .jp-InputArea pre").all_inner_texts())
    assert first_code_line(notebook) in code
    banner = page.locator(".runbook-task").inner_text()
    assert f"Task {task.id}" in banner and task.kind in banner
    assert page.locator(".runbook-outputs .admonition-title").inner_text() in (
        "Expected output",
        "Outputs are not included",
    )
    page.screenshot(path=str(artifacts / f"docs-task-{task.id}.png"), full_page=True)
    assert page.errors == []


def rehearsal_secrets() -> dict[str, str]:
    """The throwaway tokens and passwords of the rehearsal `make docs` published (its kept workspace)."""
    path = DEFAULT_REHEARSAL_DIR / "secrets.env"
    if not path.is_file():
        return {}
    pairs = (line.partition("=") for line in path.read_text(encoding="utf-8").splitlines())
    return {name: value for name, _, value in pairs if value and len(value) >= 8 and not name.startswith("#")}


@pytest.mark.browser
def test_the_phase2_pages_show_a_rehearsal_run_marked_as_one_and_nothing_secret(
    page, site_url, built_site, artifacts
):
    runs = [r for r in load_manifest(reference_dir())["runs"] if r.get("kind") == "rehearsal"]
    if not runs:
        unavailable(
            "no rehearsal run is published: `make docs` rehearses phase 2 when a Docker engine answers"
        )
    task = tasks.get("2.2")
    page.goto(urljoin(site_url, f"{task.phase}/{task.stem}/"))
    box = page.locator(".runbook-outputs")
    assert box.locator(".admonition-title").inner_text() == "Expected output (rehearsal)"
    said = box.inner_text()
    assert "a rehearsal run executed this notebook" in said and "were local stand-ins" in said
    assert "/path/to/rehearsal" in said  # the paths of the machine that ran it are placeholders
    outputs = page.locator(".jupyter-wrapper .jp-OutputArea-output")
    assert outputs.count() > 0 and "droplet" in " ".join(outputs.all_inner_texts())
    page.screenshot(path=str(artifacts / "docs-task-2.2-rehearsal.png"), full_page=True)
    assert page.errors == []
    known = rehearsal_secrets()
    for html_file in (built_site / "phase2").rglob("*.html"):
        text = html_file.read_text(encoding="utf-8")
        leaked = [name for name, value in known.items() if value in text]
        assert leaked == [], (html_file.relative_to(built_site), leaked)
        assert secrets.scrub(text, values=[]) == text, html_file  # no token-shaped string either
        assert str(DEFAULT_REHEARSAL_DIR) not in text


@pytest.mark.browser
def test_mermaid_renders_the_dependency_graphs_as_svg(page, site_url):
    page.goto(urljoin(site_url, "tasks/"))
    graphs = page.locator("div.mermaid svg")
    graphs.nth(1).wait_for(state="attached", timeout=30_000)
    assert graphs.count() == 2
    for graph, phase in zip(graphs.all(), ("phase1", "phase2"), strict=True):
        text = graph.text_content() or ""
        for task in tasks.in_phase(phase):
            assert f"{task.id} " in text, f"{task.id} missing from the {phase} graph"
        assert graph.locator(".edgePath, .flowchart-link, path").count() >= len(tasks.direct_edges(phase))
    assert page.errors == []


@pytest.mark.browser
def test_search_finds_troubleshooting(page, site_url):
    page.goto(site_url)
    page.locator("input.md-search__input").click()
    page.keyboard.type("troubleshooting", delay=20)  # Material searches on key events, not on fill()
    results = page.locator(".md-search-result__item a")
    results.first.wait_for(timeout=30_000)
    hrefs = [a.get_attribute("href") or "" for a in results.all()]
    assert any("troubleshooting/" in h for h in hrefs), hrefs


@pytest.mark.browser
def test_palette_toggles_between_light_and_dark(page, site_url):
    page.goto(site_url)
    before = page.locator("body").get_attribute("data-md-color-scheme")
    page.locator("form[data-md-component=palette] label:visible").first.click()
    after = page.locator("body").get_attribute("data-md-color-scheme")
    assert {before, after} == {"default", "slate"}


# --- link crawl (plain HTTP, no browser) ------------------------------------------------------


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []  # (tag, url)
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if values.get(name):
                self.ids.add(values[name])
        for attr in ("href", "src"):
            if values.get(attr) and tag in ("a", "link", "script", "img", "iframe", "source"):
                self.refs.append((tag, values[attr]))


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = resp.read()
            kind = resp.headers.get("Content-Type", "")
            return resp.status, body.decode("utf-8", "replace") if "html" in kind else ""
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_no_page_has_a_broken_internal_link(built_site, site_url):
    pages = {urljoin(site_url, p.relative_to(built_site).as_posix()) for p in built_site.rglob("*.html")}
    pages = {p[: -len("index.html")] if p.endswith("/index.html") else p for p in pages}
    parsed: dict[str, Links] = {}
    status: dict[str, int] = {}
    broken, external = [], []

    def load(url: str) -> Links | None:
        if url not in status:
            code, body = fetch(url)
            status[url] = code
            if body:
                parsed[url] = Links()
                parsed[url].feed(body)
        return parsed.get(url)

    queue = sorted(pages)
    seen = set(queue)
    while queue:
        url = queue.pop()
        links = load(url)
        if links is None:
            broken.append(f"{url}: HTTP {status[url]}")
            continue
        for tag, ref in links.refs:
            target = urljoin(url, ref)
            if urlparse(target).scheme not in ("http", "https"):
                continue
            if urlparse(target).netloc != urlparse(site_url).netloc:
                if tag != "a":
                    external.append(f"{url}: <{tag}> loads {target}")
                continue
            base, fragment = urldefrag(target)
            target_links = load(base)
            if status[base] != 200:
                broken.append(f"{url}: {ref} → HTTP {status[base]}")
            elif fragment and target_links is not None and unquote(fragment) not in target_links.ids:
                broken.append(f"{url}: {ref} → no #{fragment} on {base}")
            if target_links is not None and base not in seen:
                seen.add(base)
                queue.append(base)
    assert len(parsed) >= 33 + 7, f"crawled only {len(parsed)} pages"
    assert broken == [], "\n".join(broken[:40])
    assert external == [], "the site must work offline:\n" + "\n".join(external[:20])
