"""`mkdocs build --strict` of the real site: passes with no warning, one page per task, nothing external.

The bare build needs no engine (notebooks are rendered without outputs, and say so). The reference
run is the runner itself: on notebooks written here to print a planted secret, a token and colour
codes (no engine needed), its published folder is the runner's own, a failure blocks what
`runbook run --keep-going` blocks, and nothing secret reaches the folder or the built site. With an
engine (``@pytest.mark.engine``), phase 1's first real notebooks go the same way onto the pages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from testsupport import unavailable

from helpers.core import tasks
from helpers.core.paths import PROJECT_ROOT
from helpers.docsite import mermaid, reference, taskpages
from helpers.docsite.published import reference_dir
from helpers.rehearse import droplet
from helpers.runner import cli
from helpers.runner.ledger import Ledger
from helpers.runner.plan import Selection

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
            assert f"troubleshooting/#{taskpages.troubleshooting_anchor(task.id)}" in html
        else:
            assert "Not written yet" in html and task.notebook.as_posix() in html, task.id


def test_no_page_loads_anything_from_the_internet(bare_site):
    external = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.I)
    for page in bare_site.rglob("*.html"):
        match = external.search(page.read_text(encoding="utf-8"))
        assert match is None, f"{page.relative_to(bare_site)} loads {match.group(0)}"


def test_mermaid_is_served_by_the_site(bare_site):
    js = bare_site / mermaid.MERMAID_SITE_PATH
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
        assert f'id="{taskpages.troubleshooting_anchor(task.id)}"' in trouble


def test_search_index_knows_the_troubleshooting_page(bare_site):
    index = json.loads((bare_site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert any(doc["location"].startswith("troubleshooting/") for doc in index["docs"])


# --- the reference run is the runner ----------------------------------------------------------

PLANTED = "pg-Planted-4242"  # the value of a secret-named variable of the environment
TOKEN_EXPR = '"ghp_" + "A1b2" * 9'  # a GitHub-shaped token, made at run time (not in any source)
TOKEN = "ghp_" + "A1b2" * 9
HAZARDS = """\
import os
secret = os.environ["DOCS_TEST_PASSWORD"]
print("planted:", secret)
print("token:", {token})
print("split: \\x1b[31m" + secret[:6] + "\\x1b[0m" + secret[6:])
print("\\x1b[32mcoloured line\\x1b[0m")
print("run folder:", os.environ["RUNBOOK_RUN_DIR"])
print("visible-marker-1234")
"""
# task → the code of its toy notebook (1.1 passes printing the hazards; 1.7 fails; 1.8 needs 1.7;
# 1.12 needs only 1.3, so `--keep-going` still runs it)
TOYS = {
    "1.1": HAZARDS.format(token=TOKEN_EXPR),
    "1.7": 'raise RuntimeError("toy failure")',
    "1.8": 'print("never runs")',
    "1.12": 'print("independent of 1.7")',
}


def toy_project(root: Path) -> Path:
    """A project root holding the toy notebooks at the real tasks' paths (the registry stays the real one)."""
    import nbformat

    for task_id, code in TOYS.items():
        task = tasks.get(task_id)
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_markdown_cell(f"# {task.label}\n\nA toy."),
            nbformat.v4.new_code_cell(code),
        ]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = root / task.notebook
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
    return root


def outcome(ledger: Ledger) -> list[tuple[str, str, str]]:
    return [(r.id, r.status, r.reason) for r in ledger.tasks]


def build_in_process(site: Path) -> None:
    """The real mkdocs.yml, built in this process (so that the test's notebook root applies)."""
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    mkdocs_build(load_config(config_file=str(PROJECT_ROOT / "mkdocs.yml"), site_dir=str(site), strict=True))


def test_the_reference_run_is_the_runner_and_publishes_nothing_secret(tmp_path, monkeypatch):
    root = toy_project(tmp_path / "project")
    monkeypatch.setenv("RUNBOOK_REGISTRY", str(tasks.REGISTRY))  # the real tasks, with the toy notebooks
    monkeypatch.setenv("RUNBOOK_PROJECT_ROOT", str(root))
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("DOCS_TEST_PASSWORD", PLANTED)
    monkeypatch.setenv("NO_MKDOCS_2_WARNING", "1")
    monkeypatch.chdir(PROJECT_ROOT)
    only = list(TOYS)
    work = tmp_path / "work"
    setting = reference.Setting(
        kind="reference",
        description="on toy notebooks",
        work=work,
        placeholders={str(work): "/path/to/reference-run", str(root): "/path/to/runbook"},
    )
    ref = tmp_path / "ref"
    ledger, entry = reference.run(setting, ref, "phase1", Selection(only=tuple(only)))

    # (b) the same blocking as `runbook run --keep-going`, which this test runs beside it
    cli_run = tmp_path / "cli-run"
    code = cli.main(["run", "phase1", "--only", *only, "--keep-going", "--output-dir", str(cli_run)])
    assert code == 1
    expected = outcome(Ledger.load(cli_run))
    assert outcome(ledger) == expected
    statuses = {tid: status for tid, status, _ in expected if tid in only}
    assert statuses == {"1.1": "passed", "1.7": "failed", "1.8": "not-run", "1.12": "passed"}
    assert "1.7" in ledger.task("1.8").reason

    # (c) what is published is the runner's run folder: its files, a normal ledger with that outcome
    folder = ref / entry["folder"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in cli_run.iterdir())
    published = Ledger.load(folder)
    assert published.mode == "run" and published.phase == "phase1" and outcome(published) == expected
    assert published.root == "/path/to/runbook" and published.options["keep_going"] is True

    # (a) no planted secret, token, ANSI code or temporary path in the published folder...
    every_file = "\n".join(p.read_text(encoding="utf-8") for p in ref.rglob("*") if p.is_file())
    assert "visible-marker-1234" in every_file and "[REDACTED]" in every_file  # the outputs are there
    for bad in (PLANTED, TOKEN, "\\u001b", "\x1b", str(work), str(tmp_path)):
        assert bad not in every_file, bad
    run_folder_line = "run folder: /path/to/reference-run/runs/reference-phase1-only-1.1-1.7-1.8-1.12/phase1"
    assert run_folder_line in every_file

    # ... nor in the site built from it, whose page of 1.1 shows those outputs
    monkeypatch.setattr(taskpages, "PROJECT_ROOT", root)
    monkeypatch.setenv("RUNBOOK_DOCS_REFERENCE", str(ref))
    assert reference_dir() == ref
    site = tmp_path / "site"
    build_in_process(site)
    page = page_html(site, tasks.get("1.1"))
    assert "Expected output" in page and "visible-marker-1234" in page and "[REDACTED]" in page
    assert "Outputs are not included" in page_html(site, tasks.get("1.8"))
    assert "not-run: needs 1.7" in page_html(site, tasks.get("1.8"))
    for path in site.rglob("*"):
        if path.is_file() and path.suffix in (".html", ".json", ".js", ".txt", ".xml"):
            text = path.read_text(encoding="utf-8", errors="replace")
            for bad in (PLANTED, TOKEN, "\x1b", str(tmp_path)):
                assert bad not in text, f"{bad!r} in {path.relative_to(site)}"


@pytest.mark.engine
def test_reference_run_outputs_reach_the_pages_scrubbed(tmp_path, monkeypatch):
    """Phase 1's first tasks for real (1.1 to 1.3 need no compose project), then a build with them."""
    first = [t.id for t in tasks.order("phase1")[:3]]
    missing = [t for t in first if not (PROJECT_ROOT / tasks.get(t).notebook).is_file()]
    assert not missing, f"notebooks {missing} are not written yet"
    token = "dop_v1_" + "5eed" * 16
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", token)  # a known secret value the outputs must not carry
    runs_dir = tmp_path / "developer-runs"
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(runs_dir))  # the developer's: the reference run keeps out
    ref = tmp_path / "ref"
    ledger, entry = reference.reference_run(ref, only=first, echo=lambda *_: None)
    assert {r.id: r.status for r in ledger.tasks if r.selected} == dict.fromkeys(first, "passed")
    assert entry["about"]["engine"] and entry["kind"] == "reference"
    assert not runs_dir.exists()  # `runbook resume` still finds the developer's last run, not this one
    # the runner injected the parameters the reference run gives, where the notebook declares them
    injected = Ledger.load(ref / entry["folder"])
    assert injected.task("1.1").parameters == {"dry_run": False} and injected.task("1.3").parameters == {}

    site = tmp_path / "site"
    proc = build(site, RUNBOOK_DOCS_REFERENCE=str(ref))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    for task_id in first:
        html = page_html(site, tasks.get(task_id))
        assert "Expected output" in html and "Outputs are not included" not in html
        assert "jp-OutputArea-output" in html  # real outputs are on the page
    for folder in (ref, site):
        for path in folder.rglob("*"):
            if path.is_file():
                assert token not in path.read_text(encoding="utf-8", errors="replace"), path
    # the notebooks themselves were not touched: still without outputs
    for task_id in first:
        nb = json.loads((PROJECT_ROOT / tasks.get(task_id).notebook).read_text(encoding="utf-8"))
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_the_site_has_an_operations_section(bare_site):
    overview = (bare_site / "tasks" / "index.html").read_text(encoding="utf-8")
    assert 'id="operations"' in overview and "runbook doctor" in overview
    for task in tasks.in_phase("operations"):
        assert f'href="../{task.phase}/{task.stem}/"' in overview, task.id  # the table links each page
        page = page_html(bare_site, task)
        assert "Operations: day two in production" in page  # the navigation's section
    trouble = (bare_site / "troubleshooting" / "index.html").read_text(encoding="utf-8")
    assert 'id="operations-problems"' in trouble and 'id="rollback-refused"' in trouble


@pytest.mark.engine
def test_a_rehearsal_run_reaches_the_phase2_pages_marked_as_such_and_scrubbed(tmp_path):
    """What ``make docs-rehearsal`` does, on phase 2's first tasks: rehearse, publish, build; read it all."""
    try:
        droplet.ensure_image(build=False)
    except droplet.DropletError as exc:
        unavailable(f"droplet stand-in image not available: {exc}")
    first = [t.id for t in tasks.order("phase2")[:2]]
    work = tmp_path / "rehearsal"
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITALOCEAN_API_URL", "GITHUB_API_URL")}
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.rehearse", "phase2", "--to", first[-1], "--runs", "1", "--keep",
         "--workdir", str(work)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    secrets = {
        name: value
        for name, _, value in (
            line.partition("=") for line in (work / "secrets.env").read_text(encoding="utf-8").splitlines()
        )
        if value and not name.startswith("#")
    }
    assert {"DIGITALOCEAN_TOKEN", "GITHUB_TOKEN", "COOLIFY_API_TOKEN"} <= set(secrets)
    ref = tmp_path / "ref"
    published = subprocess.run(
        [sys.executable, "-m", "helpers.docsite", "publish-rehearsal", str(work), "--out", str(ref)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert published.returncode == 0, published.stdout + published.stderr
    manifest = json.loads((ref / "manifest.json").read_text(encoding="utf-8"))
    (run,) = manifest["runs"]
    assert (run["kind"], run["phase"], run["status"]) == ("rehearsal", "phase2", "passed")
    assert "stand-ins" in run["setting"] and "/path/to/rehearsal" in run["placeholders"]

    site = tmp_path / "site"
    built = build(site, RUNBOOK_DOCS_REFERENCE=str(ref))
    assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
    for task_id in first:
        html = page_html(site, tasks.get(task_id))
        assert "Expected output (rehearsal)" in html and "a rehearsal run executed this notebook" in html
        assert "the DigitalOcean, Coolify and GitHub APIs were local stand-ins" in html
        assert "jp-OutputArea-output" in html and "Outputs are not included" not in html
    assert "Outputs are not included" in page_html(site, tasks.order("phase2")[2])  # not rehearsed here
    assert "Expected output (rehearsal)" not in page_html(site, tasks.get("1.1"))
    # nothing of the rehearsal's secrets or workspace in what was published, nor in the site
    for folder in (ref, site):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix in (".html", ".json", ".ipynb", ".md", ".log", ".txt", ".js"):
                text = path.read_text(encoding="utf-8", errors="replace")
                leaked = [name for name, value in secrets.items() if len(value) >= 8 and value in text]
                assert leaked == [] and str(work) not in text, (path, leaked)
