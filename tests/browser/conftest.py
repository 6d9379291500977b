"""The built site, served on 127.0.0.1 in-process, and Debian's Chromium driven by Playwright.

No browser can be downloaded here: Playwright drives ``/usr/bin/chromium`` (``RUNBOOK_CHROMIUM``)
through its executable path. Screenshots go to ``RUNBOOK_ARTIFACTS_DIR`` (default
``runs/ci-artifacts/``), which CI keeps as artifacts.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.core.paths import PROJECT_ROOT
from helpers.core.settings import env

CHROMIUM = env.chromium  # as tests/conftest.py

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: ``RUNBOOK_ARTIFACTS_DIR``, else ``runs/ci-artifacts/`` (git-ignored)."""
    path = env.artifacts_dir
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """``mkdocs build --strict`` of the real project (reference outputs used when present)."""
    site = tmp_path_factory.mktemp("browser-site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return site


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def site_url(built_site) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="docs-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# Module scope, not session: Playwright's sync API keeps an event loop running in the main thread
# while it is open, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


# Material renders Mermaid into a *closed* shadow root; open it so the test can see the SVG.
OPEN_SHADOW_ROOTS = """
const attach = Element.prototype.attachShadow;
Element.prototype.attachShadow = function (init) { return attach.call(this, { ...init, mode: "open" }); };
"""


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(OPEN_SHADOW_ROOTS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    tab.errors = errors  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        context.close()
