"""`mkdocs build --strict` of the real site: passes with no warning, one page per task, nothing external.

The bare build needs no engine (notebooks are rendered without outputs, and say so). The reference
build (``@pytest.mark.engine``) executes real notebooks against the engine and checks that their
scrubbed outputs reach the pages and no secret does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.core import tasks
from helpers.core.paths import PROJECT_ROOT
from helpers.docsite import site as docsite

pytestmark = pytest.mark.slow

MKDOCS = [sys.executable, "-m", "mkdocs"]


def build(site: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", **env}
    return subprocess.run(
        [*MKDOCS, "build", "--strict", "--site-dir", str(site)],
        cwd=PROJECT_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def page_html(site: Path, task: tasks.Task) -> str:
    return (site / task.phase / task.stem / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def bare_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    proc = build(site, RUNBOOK_DOCS_REFERENCE="off")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert not re.search(r"^(WARNING|ERROR)\b", output, re.M), output[-4000:]
    return site


def test_every_task_has_a_page_that_tells_the_truth(bare_site):
    for task in tasks.all_tasks():
        html = page_html(bare_site, task)
        if (PROJECT_ROOT / task.notebook).is_file():
            assert "jupyter-wrapper" in html, task.id
            assert "Outputs are not included" in html, task.id
            assert f"troubleshooting/#{docsite.troubleshooting_anchor(task.id)}" in html
        else:
            assert "Not written yet" in html and task.notebook.as_posix() in html, task.id


def test_no_page_loads_anything_from_the_internet(bare_site):
    external = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.I)
    for page in bare_site.rglob("*.html"):
        match = external.search(page.read_text(encoding="utf-8"))
        assert match is None, f"{page.relative_to(bare_site)} loads {match.group(0)}"


def test_mermaid_is_served_by_the_site(bare_site):
    js = bare_site / docsite.MERMAID_SITE_PATH
    assert js.stat().st_size > 1_000_000 and b"mermaid" in js.read_bytes()[:2000]
    home = (bare_site / "index.html").read_text(encoding="utf-8")
    assert 'src="assets/vendor/mermaid.min.js"' in home


def test_overview_graphs_and_troubleshooting_anchors_are_generated(bare_site):
    overview = (bare_site / "tasks" / "index.html").read_text(encoding="utf-8")
    graphs = re.findall(r'<pre class="mermaid"><code>(.*?)</code></pre>', overview, re.S)
    assert len(graphs) == 2
    for graph, phase in zip(graphs, ("phase1", "phase2"), strict=True):
        assert all(f"{t.id} " in graph for t in tasks.in_phase(phase))
    trouble = (bare_site / "troubleshooting" / "index.html").read_text(encoding="utf-8")
    for task in tasks.all_tasks():
        assert f'id="{docsite.troubleshooting_anchor(task.id)}"' in trouble


def test_search_index_knows_the_troubleshooting_page(bare_site):
    index = json.loads((bare_site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert any(doc["location"].startswith("troubleshooting/") for doc in index["docs"])


@pytest.mark.engine
def test_reference_run_outputs_reach_the_pages_scrubbed(tmp_path, monkeypatch):
    """Phase 1's first tasks for real (1.1 to 1.3 need no compose project), then a build with them."""
    first = [t.id for t in tasks.order("phase1")[:3]]
    missing = [t for t in first if not (PROJECT_ROOT / tasks.get(t).notebook).is_file()]
    assert not missing, f"notebooks {missing} are not written yet"
    token = "dop_v1_" + "5eed" * 16
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", token)  # a known secret value the outputs must not carry
    ref = tmp_path / "ref"
    manifest = docsite.reference_run("phase1", only=first, out_dir=ref, echo=lambda *_: None)
    assert {k: v["status"] for k, v in manifest["tasks"].items()} == dict.fromkeys(first, "passed")
    assert manifest["run"]["engine"]
    assert docsite.leaked(ref, [token]) == []

    site = tmp_path / "site"
    proc = build(site, RUNBOOK_DOCS_REFERENCE=str(ref))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    for task_id in first:
        html = page_html(site, tasks.get(task_id))
        assert "Expected output" in html and "Outputs are not included" not in html
        assert "jp-OutputArea-output" in html  # real outputs are on the page
    assert docsite.leaked(site, [token]) == []
    # the notebooks themselves were not touched: still without outputs
    for task_id in first:
        nb = json.loads((PROJECT_ROOT / tasks.get(task_id).notebook).read_text(encoding="utf-8"))
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
