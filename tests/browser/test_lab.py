"""The learners' path in a real browser: ``runbook lab``, a phase-1 notebook, Run All Cells, the check table.

``runbook lab`` runs as a learner starts it (on a free port, with a token), with the environment of a
disposable sample-app copy (:class:`helpers.runner.sampleapp.Sandbox`: its own compose project and free
ports), so nothing a developer has configured is touched. Debian's Chromium, driven by Playwright,
opens notebook 1.3 (Verify the Docker installation: it test-runs a container on the engine), runs
every cell from the Run menu and reads the ✅ table; what the page shows is compared with what the
engine says from outside. JupyterLab's question about fetching news must not greet the learner; a plain
``jupyter lab`` (the same command without the runbook's configuration) shows that the check can fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from testsupport import free_port

from helpers.core import secrets as runbook_secrets
from helpers.core.paths import PROJECT_ROOT
from helpers.runner import cli, sampleapp

NEWS = re.compile(
    r"official Jupyter news", re.I
)  # "Would you like to get notified about official Jupyter news?"
NOTEBOOK = "phase1/1.03-verify-docker.ipynb"
CHECKS_TITLE = "Docker is ready for the services"


@dataclass
class Lab:
    url: str
    token: str
    process: subprocess.Popen[str]
    env: dict[str, str]

    def open(self, page: Page, path: str = "") -> None:
        page.goto(f"{self.url}/lab{'/tree/' + path if path else ''}?token={self.token}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def running_lab(command: list[str], env: dict[str, str], port: int, token: str) -> Iterator[Lab]:
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # JupyterLab and its kernels are stopped as one group
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while not _answers(f"{url}/api/status?token={token}"):
            assert process.poll() is None, process.stdout.read() if process.stdout else "JupyterLab exited"
            assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
            time.sleep(0.5)
        yield Lab(url, token, process, env)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def lab_environment(tmp: Path, extra: dict[str, str]) -> dict[str, str]:
    """The test process's environment without a developer's runbook variables or secrets, Jupyter's
    folders in ``tmp`` (no workspace or setting of the developer's is read or written), plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNBOOK_", "JUPYTER")) and k not in runbook_secrets.SECRETS
    }
    # the learner's notebooks are the committed ones: nothing may save outputs into them
    autosave = tmp / "settings" / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    autosave.parent.mkdir(parents=True)
    autosave.write_text(json.dumps({"autosave": False}))
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        RUNBOOK_SECRETS_FILE=str(tmp / "secrets.env"),
    )
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def runbook_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, sampleapp.Sandbox]]:
    """``runbook lab`` on a free port, pointed at a disposable sample-app copy."""
    box = sampleapp.Sandbox.create(f"rb-lab-{uuid.uuid4().hex[:8]}")
    try:
        port, token = free_port(), secrets.token_hex(16)
        env = lab_environment(tmp_path_factory.mktemp("lab"), box.env)
        command = [sys.executable, "-m", "helpers.runner.cli", "lab", "--port", str(port), "--no-browser"]
        with running_lab([*command, "--", f"--ServerApp.token={token}"], env, port, token) as lab:
            yield lab, box
    finally:
        problems = box.teardown()
        assert not problems, problems


def engine_version() -> str:
    return subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, check=True
    ).stdout.strip()


def run_all_cells(page: Page, tries: int = 3) -> None:
    """The Run menu's Run All Cells, once the notebook's kernel is idle, until a cell has started.

    On a loaded machine the menu can open before JupyterLab has made the notebook its current widget: the
    command is then disabled, the click does nothing and every prompt stays ``[ ]`` (a CI run's page showed
    exactly that after 180 s). A person would choose it again; so does this, at most ``tries`` times."""
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(
        timeout=120_000
    )
    started = page.locator(".jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    for _ in range(tries):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            expect(started.first).to_be_attached(timeout=30_000)
            return
        except AssertionError:
            page.keyboard.press("Escape")  # a menu left open
    raise AssertionError(f"Run All Cells started no cell in {tries} tries")


@pytest.mark.engine
@pytest.mark.browser
def test_a_learner_runs_notebook_1_3_in_runbook_lab(page: Page, runbook_lab, artifacts: Path) -> None:
    lab, box = runbook_lab
    committed = (PROJECT_ROOT / "notebooks" / NOTEBOOK).read_bytes()
    lab.open(page, NOTEBOOK)
    expect(page.locator(".jp-NotebookPanel h1", has_text="1.3")).to_be_visible(timeout=120_000)
    run_all_cells(page)

    checks = page.locator(".jp-OutputArea-output table").filter(has_text="probe image present locally")
    expect(checks).to_be_visible(timeout=180_000)
    expect(page.locator(".jp-InputPrompt", has_text="[*]")).to_have_count(0, timeout=60_000)
    checks.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "lab-1.3-check-table.png"))

    rows = checks.locator("tbody tr").all_inner_texts()
    assert rows and all("✅" in row for row in rows), rows
    assert not any("❌" in row for row in rows)
    output_text = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    assert CHECKS_TITLE in output_text
    assert "Traceback" not in output_text
    # what the page shows, against the engine and the sandbox seen from outside
    facts = page.locator(".jp-OutputArea-output table").filter(has_text="engine version (CLI)")
    assert engine_version() in facts.inner_text()
    assert box.env.get("REDIS_IMAGE", "redis:7-alpine") in " ".join(rows)
    sessions = json.load(urllib.request.urlopen(f"{lab.url}/api/sessions?token={lab.token}", timeout=10))
    assert [s["path"] for s in sessions] == [NOTEBOOK]  # the kernel ran the notebook JupyterLab opened
    # no question about fetching news from the internet, at any point of the session
    assert page.get_by_text(NEWS).count() == 0
    assert not NEWS.search(page.content())
    assert (PROJECT_ROOT / "notebooks" / NOTEBOOK).read_bytes() == committed  # not saved with outputs
    docmanager = f"{lab.url}/lab/api/settings/@jupyterlab/docmanager-extension:plugin?token={lab.token}"
    assert json.load(urllib.request.urlopen(docmanager, timeout=10))["settings"]["autosave"] is False
    assert page.errors == []


@pytest.mark.browser
def test_plain_jupyterlab_would_ask_about_news(page: Page, tmp_path: Path) -> None:
    """The same command `runbook lab` runs, without its Jupyter configuration: the prompt appears."""
    port, token = free_port(), secrets.token_hex(16)
    command = cli.lab_command(PROJECT_ROOT, port, True, [f"--ServerApp.token={token}"])
    with running_lab(command, lab_environment(tmp_path, {}), port, token) as lab:
        lab.open(page)
        expect(page.get_by_text(NEWS).first).to_be_visible(timeout=60_000)
