"""The docs site's hooks: navigation, task pages, markers, scrubbing and Mermaid staging (no engine)."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import nbformat
import pytest
import yaml

from helpers.core import tasks
from helpers.core.paths import PROJECT_ROOT
from helpers.core.secrets import SECRETS
from helpers.core.tasks import UnknownTask
from helpers.docsite import markdown, mermaid, pagehtml, publish, published, taskpages
from helpers.docsite.__main__ import main
from helpers.docsite.errors import DocsiteError
from helpers.runner.ledger import Ledger, TaskRecord

DOCS = PROJECT_ROOT / "docs"


def write_notebook(root: Path, task_id: str, heading: str = "", code: str = "x = 1") -> Path:
    task = tasks.get(task_id)
    path = root / task.notebook
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {heading or task.label}\n\nWhy."),
        nbformat.v4.new_code_cell(code),
    ]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project root with no notebooks; tests add the ones they need."""
    monkeypatch.setattr(taskpages, "PROJECT_ROOT", tmp_path)
    return tmp_path


def all_pages(ref_dir=None):
    return taskpages.task_pages(ref_dir)


# --- navigation -------------------------------------------------------------------------------


def test_nav_markers_expand_to_every_task_in_run_order(project):
    nav = [{"Home": "index.md"}, {"P1": "registry:phase1"}, {"P2": "registry:phase2"}, {"X": "x.md"}]
    pages = all_pages()
    out = taskpages.expand_nav(nav, pages)
    assert out[0] == {"Home": "index.md"} and out[-1] == {"X": "x.md"}
    for section, phase in ((out[1]["P1"], "phase1"), (out[2]["P2"], "phase2")):
        expected = tasks.order(phase)
        assert [next(iter(e.values())) for e in section] == [pages[t.id].src_uri for t in expected]
        assert [next(iter(e)) for e in section] == [t.label for t in expected]
    assert sum(len(s) for s in (out[1]["P1"], out[2]["P2"])) == 33


def test_nav_marker_with_unknown_phase_is_a_clear_error(project):
    with pytest.raises(DocsiteError, match="phase3"):
        taskpages.expand_nav([{"P3": "registry:phase3"}], all_pages())


def test_mkdocs_yml_takes_the_tasks_from_the_registry_only():
    text = (PROJECT_ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    config = (
        yaml.safe_load(text.replace("!!python/name:", "")) if "!!python" in text else yaml.safe_load(text)
    )
    values = [next(iter(item.values())) for item in config["nav"]]
    assert "registry:phase1" in values and "registry:phase2" in values
    assert not re.search(r"\b[12]\.\d\d-", text), "mkdocs.yml must not list task pages by hand"
    assert config["hooks"] == ["docs/hooks/runbook.py"]


# --- task pages -------------------------------------------------------------------------------


def test_missing_notebook_gets_an_honest_generated_page(project):
    pages = all_pages()
    page = pages["1.4"]
    assert page.state == "missing" and page.source is None and page.src_uri == "phase1/1.04-start-services.md"
    md = markdown.missing_page_markdown(page, pages)
    assert md.startswith("# 1.4 Create and start the services")
    assert "Not written yet" in md and "notebooks/phase1/1.04-start-services.ipynb" in md
    assert "automated" in md
    # prerequisites and dependents are links to their pages, relative to this page
    assert "[1.7 Create docker-compose.yml](1.07-create-compose-file.md)" in md
    assert "[1.5 Verify database connectivity](1.05-verify-connectivity.md)" in md
    assert "(../troubleshooting.md#task-1-4)" in md


def test_first_and_last_task_pages_say_so(project):
    pages = all_pages()
    assert "this is where the plan starts" in markdown.missing_page_markdown(pages["1.1"], pages)
    assert "this is the last task" in markdown.missing_page_markdown(pages["2.18"], pages)
    # 1.15 is needed by 2.1, across phases
    assert "(../phase2/2.01-digitalocean-account.md)" in markdown.missing_page_markdown(pages["1.15"], pages)


# --- published runs: what a task page shows ---------------------------------------------------


def fake_run(project: Path, outcomes: dict[str, str], folder: Path | None = None) -> Path:
    """A run folder as ``runbook run phase1 --only ...`` leaves it (ledger, executed notebooks), by hand.

    ``outcomes``: task id → status for the selected tasks; the others are ``skipped`` (not selected).
    """
    run_dir = folder or project / "runs" / "x" / "phase1"
    run_dir.mkdir(parents=True)
    records = []
    for n, task in enumerate(tasks.order("phase1"), start=1):
        status = outcomes.get(task.id, "skipped")
        record = TaskRecord(
            task.id, task.title, task.kind, list(task.needs), task.notebook.as_posix(), task.notebook.name, n,
            selected=task.id in outcomes, status=status,
        )  # fmt: skip
        if status == "failed":
            record.error = {"ename": "VerificationFailed", "evalue": "engine answers: 1 of 3 checks failed"}
        if status == "not-run":
            record.reason = "needs 1.3, which failed"
        if status in ("passed", "failed") and (project / task.notebook).is_file():
            (run_dir / task.notebook.name).write_text(
                (project / task.notebook).read_text(encoding="utf-8"), encoding="utf-8"
            )
        records.append(record)
    ledger = Ledger(
        run_id=run_dir.name, phase="phase1", phase_title="Phase 1", mode="run", dry_run=False,
        root=str(project), registry="helpers/core/tasks.yaml", options={"selection": "test"},
        parameters={}, tasks=records, status="failed" if "failed" in outcomes.values() else "passed",
        attempts=[{"started": "2026-11-23T13:58:00+00:00", "finished": "2026-11-23T14:00:00+00:00"}],
    )  # fmt: skip
    ledger.path = run_dir / "ledger.json"
    ledger.save()
    return run_dir


def how(name: str = "reference-phase1", **kw) -> publish.Publication:
    values = dict(
        name=name,
        kind="reference",
        setting="in a test",
        placeholders={},
        about={"engine": "20.10.24"},
        replaces_phase=True,
    )
    return publish.Publication(**{**values, **kw})


def published_pages(project: Path, outcomes: dict[str, str], **kw) -> dict[str, taskpages.TaskPage]:
    publish.publish(fake_run(project, outcomes), project / "ref", how(**kw))
    return all_pages(project / "ref")


def test_existing_notebook_is_rendered_bare_without_a_reference_run(project):
    path = write_notebook(project, "1.3")
    page = all_pages(None)["1.3"]
    assert (page.state, page.source, page.src_uri) == ("bare", path, "phase1/1.03-verify-docker.ipynb")
    assert "switched off" in page.reason
    page = all_pages(project / "no-such-ref")["1.3"]
    assert page.state == "bare" and "no reference run" in page.reason


def test_a_passed_task_of_the_published_run_is_rendered_with_its_outputs(project):
    write_notebook(project, "1.3")
    page = published_pages(project, {"1.3": "passed"})["1.3"]
    assert page.state == "reference"
    assert page.source == project / "ref" / "reference-phase1" / "phase1" / "1.03-verify-docker.ipynb"
    assert page.src_uri == "phase1/1.03-verify-docker.ipynb"  # same address either way
    assert page.source.parents[1] / page.src_uri == page.source  # the layout MkDocs serves it from
    assert "2026-11-23 14:00 UTC" in page.reason and "20.10.24" in page.reason
    assert page.run is not None and page.run["kind"] == "reference"


def test_a_notebook_changed_after_the_run_is_rendered_bare(project):
    path = write_notebook(project, "1.3")
    published_pages(project, {"1.3": "passed"})
    path.write_text(path.read_text(encoding="utf-8").replace("Why.", "Why not."), encoding="utf-8")
    page = all_pages(project / "ref")["1.3"]
    assert page.state == "stale" and page.source == path


def test_a_task_the_run_did_not_pass_is_rendered_bare_with_the_ledgers_reason(project):
    for task_id in ("1.2", "1.3", "1.7"):
        write_notebook(project, task_id)
    pages = published_pages(project, {"1.3": "failed", "1.7": "not-run"})
    assert (
        pages["1.3"].state == "bare" and "failed: VerificationFailed: engine answers" in pages["1.3"].reason
    )
    assert pages["1.7"].state == "bare" and "not-run: needs 1.3, which failed" in pages["1.7"].reason
    assert "no reference run" in pages["1.2"].reason  # not selected by that run


def test_the_newest_run_that_selected_a_task_is_shown(project):
    for task_id in ("1.3", "1.7"):
        write_notebook(project, task_id)
    publish.publish(fake_run(project, {"1.3": "failed", "1.7": "passed"}), project / "ref", how())
    again = fake_run(project, {"1.3": "passed"}, project / "runs" / "y" / "phase1")
    publish.publish(again, project / "ref", how("reference-phase1-only-1.3", replaces_phase=False))
    pages = all_pages(project / "ref")
    assert pages["1.3"].state == "reference" and "reference-phase1-only-1.3" in str(pages["1.3"].source)
    assert pages["1.7"].state == "reference" and "/reference-phase1/" in str(pages["1.7"].source)
    # a whole-phase run replaces both (and deletes their folders)
    publish.publish(
        fake_run(project, {"1.3": "passed"}, project / "runs" / "z" / "phase1"), project / "ref", how()
    )
    manifest = published.load_manifest(project / "ref")
    assert [r["name"] for r in manifest["runs"]] == ["reference-phase1"]
    assert not (project / "ref" / "reference-phase1-only-1.3").exists()
    assert "no reference run" in all_pages(project / "ref")["1.7"].reason


def test_corrupt_manifest_says_what_to_do(project):
    (project / "ref").mkdir()
    (project / "ref" / published.MANIFEST).write_text("{not json", encoding="utf-8")
    with pytest.raises(DocsiteError, match="reference-run"):
        all_pages(project / "ref")


def test_a_manifest_of_an_older_runbook_counts_as_no_run(project):
    write_notebook(project, "1.3")
    (project / "ref").mkdir()
    old = {"run": {}, "tasks": {"1.3": {"status": "passed", "file": "phase1/1.03-verify-docker.ipynb"}}}
    (project / "ref" / published.MANIFEST).write_text(json.dumps(old), encoding="utf-8")
    assert "no reference run" in all_pages(project / "ref")["1.3"].reason


def test_reference_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RUNBOOK_DOCS_REFERENCE", raising=False)
    assert published.reference_dir() == published.DEFAULT_REFERENCE_DIR
    monkeypatch.setenv("RUNBOOK_DOCS_REFERENCE", "off")
    assert published.reference_dir() is None
    monkeypatch.setenv("RUNBOOK_DOCS_REFERENCE", str(tmp_path))
    assert published.reference_dir() == tmp_path


def test_title_comes_from_the_notebooks_first_heading(project):
    path = write_notebook(project, "1.5", heading="1.5 Verify database connectivity (PostgreSQL *and* Redis)")
    assert taskpages.notebook_title(path) == "1.5 Verify database connectivity (PostgreSQL and Redis)"
    assert all_pages()["1.5"].title == "1.5 Verify database connectivity (PostgreSQL and Redis)"
    # a heading without the id gets it, so the nav always shows the id
    path = write_notebook(project, "1.5", heading="Check the databases")
    assert all_pages()["1.5"].title == "1.5 Check the databases"


def test_title_ignores_comments_in_fenced_code(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("```bash\n# not a title\n```\n\n# 1.2 Install Docker")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert taskpages.notebook_title(path) == "1.2 Install Docker"
    path.write_text("not json", encoding="utf-8")
    assert taskpages.notebook_title(path) is None


def test_troubleshooting_anchor_is_stable_and_checked():
    assert taskpages.troubleshooting_anchor("1.4") == "task-1-4"
    assert taskpages.troubleshooting_url("2.13") == "troubleshooting.md#task-2-13"
    with pytest.raises(UnknownTask):
        taskpages.troubleshooting_anchor("1.99")


# --- markers ----------------------------------------------------------------------------------


def test_graph_and_task_table_come_from_the_registry(project):
    pages = all_pages()
    md = markdown.expand_markers(
        "<!-- runbook:graph phase2 -->\n\n<!-- runbook:tasks phase2 -->", "tasks.md", pages
    )
    assert md.startswith("```mermaid\n" + tasks.mermaid("phase2"))
    rows = [line for line in md.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [re.search(r"\[(\d\.\d+) ", r).group(1) for r in rows] == [t.id for t in tasks.order("phase2")]
    assert "[2.9](phase2/2.09-github-actions-workflow.md)" in md  # needs of 2.13, linked
    assert "not written yet" in rows[0]


def test_task_count_and_levels_markers(project):
    md = markdown.expand_markers(
        "<!-- runbook:task-count --> / <!-- runbook:task-count phase2 -->\n<!-- runbook:levels phase2 -->",
        "index.md",
        all_pages(),
    )
    assert md.startswith("33 / 18\n")
    assert "2.9, 2.10, 2.11, 2.12 (independent of each other)" in md


def test_unknown_marker_is_an_error(project):
    with pytest.raises(DocsiteError, match="runbook:grpah"):
        markdown.expand_markers("<!-- runbook:grpah phase1 -->", "x.md", all_pages())


def test_every_task_has_a_troubleshooting_section_with_related_problems(project):
    guide = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    out = markdown.expand_markers(guide, "troubleshooting.md", all_pages())
    anchors = re.findall(r"\{#(task-[\d-]+)\}", out)
    assert anchors == [
        taskpages.troubleshooting_anchor(t.id) for p in ("phase1", "phase2") for t in tasks.order(p)
    ]
    sections = {s.anchor for s in markdown.guide_sections(guide)}
    for block in re.split(r"\n#### ", out)[1:]:
        related = re.findall(r"\]\(#([\w-]+)\)", block)
        assert related, f"no troubleshooting entry applies to {block.splitlines()[0]}"
        assert set(related) <= sections


def test_required_docker_problems_are_covered():
    sections = {
        s.anchor for s in markdown.guide_sections((DOCS / "troubleshooting.md").read_text(encoding="utf-8"))
    }
    for anchor in (
        "engine-not-running",
        "wsl-integration-off",
        "port-taken",
        "socket-permission-denied",
        "volume-data-gone",
        "slow-mounts",
        "disk-full",
        "images-not-pulling",
    ):
        assert anchor in sections


def test_applies_to_with_a_typo_is_caught():
    with pytest.raises(UnknownTask):
        markdown.guide_sections("### Broken {#broken}\n<!-- applies-to: 1.4 1.44 -->\n")


def test_secrets_table_lists_every_secret():
    md = markdown.secrets_markdown()
    assert all(f"| `{name}` |" in md for name in SECRETS)


# --- notebook page HTML -----------------------------------------------------------------------


NBCONVERT_HEAD = """<style>.x{}</style>
<!-- Load mathjax -->
<script src=""> </script>
<!-- MathJax configuration -->
<script type="text/x-mathjax-config">MathJax.Hub.Config({});</script>
<!-- End of mathjax configuration --><script type="module">
  document.addEventListener("DOMContentLoaded", async () => {
    const mermaid = (await import("https://cdnjs.cloudflare.com/ajax/libs/mermaid/11.10.0/x.mjs")).default;
    function f(tag) { return `<${tag} />`; }
  });
</script>
<script>keep(1)</script><div class="jupyter-wrapper"><h1 id="t">1.3 Verify</h1><p>Why.</p></div>"""


def test_cdn_scripts_are_dropped_and_local_ones_kept():
    out = pagehtml.strip_cdn_scripts(NBCONVERT_HEAD)
    assert "http" not in out and "MathJax" not in out and "mathjax" not in out
    assert "<script>keep(1)</script>" in out and "<style>.x{}</style>" in out and "<p>Why.</p>" in out


def test_banner_goes_under_the_title(project):
    write_notebook(project, "1.3")
    pages = all_pages(None)
    html = pagehtml.banner_html(
        pages["1.3"], pages, lambda uri: "../" + uri.replace(".md", "/").replace(".ipynb", "/")
    )
    assert 'href="../phase1/1.02-install-docker/"' in html
    assert "#task-1-3" in html and "Outputs are not included" in html
    out = pagehtml.insert_after_title('<div><h1 id="t">1.3</h1><p>Why.</p></div>', html)
    assert out.index("</h1>") < out.index("runbook-task") < out.index("<p>Why.</p>")
    assert pagehtml.insert_after_title("<p>no title</p>", "B").startswith("B")


# --- publishing a run folder (no kernel: the folder is written by hand) ------------------------

ANSI_RED, ANSI_OFF = "\x1b[31m", "\x1b[0m"


def executed(run_dir: Path, task_id: str, *texts: str) -> Path:
    """Give the task's executed notebook in ``run_dir`` a stream output with ``texts``."""
    path = run_dir / tasks.get(task_id).notebook.name
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="".join(texts))]
    nbformat.write(nb, path)
    return path


def test_publishing_shows_paths_as_placeholders_and_drops_ansi_codes(project):
    write_notebook(project, "1.3")
    work = project / "work"
    run_dir = fake_run(project, {"1.3": "passed"}, work / "runs" / "r" / "phase1")
    executed(run_dir, "1.3", f"wrote {work}/app/docker-compose.yml\n", f"{ANSI_RED}green?{ANSI_OFF} ok\n")
    (run_dir / "runner.log").write_text(f"run folder {run_dir}\n", encoding="utf-8")
    entry = publish.publish(
        run_dir, project / "ref", how(placeholders={str(work / "app"): "/path/to/app", str(work): "/w"})
    )
    folder = project / "ref" / entry["folder"]
    text = (folder / "1.03-verify-docker.ipynb").read_text(encoding="utf-8")
    assert "/path/to/app/docker-compose.yml" in text and str(work) not in text
    assert "green? ok" in text and "\\u001b" not in text
    assert (folder / "runner.log").read_text(encoding="utf-8") == "run folder /w/runs/r/phase1\n"
    # the published folder is still a run folder of the runner: its ledger loads, with the run's outcome
    ledger = Ledger.load(folder)
    assert ledger.mode == "run" and ledger.task("1.3").status == "passed" and ledger.root == str(project)
    assert entry["sources"] == {"1.3": published.file_sha256(project / tasks.get("1.3").notebook)}
    assert entry["placeholders"] == ["/path/to/app", "/w"]


@pytest.mark.parametrize(
    ("planted", "why"),
    [
        ("pg-Secret-4242", "a secret value"),  # the value of a secret-named variable of the environment
        ("ghp_" + "A1b2" * 9, "token-shaped"),  # a GitHub token nobody configured
        ("postgresql://app:hunter22@db:5432/app", "token-shaped"),  # a password inside a URL
    ],
)
def test_a_run_folder_that_still_holds_a_secret_is_not_published(project, monkeypatch, planted, why):
    """The runner scrubs as it writes; publishing checks it did, with the same Redactor, and refuses."""
    monkeypatch.setenv("DOCS_TEST_PASSWORD", "pg-Secret-4242")
    write_notebook(project, "1.3")
    run_dir = fake_run(project, {"1.3": "passed"})
    executed(run_dir, "1.3", f"leaked {planted}\n")
    (project / "ref").mkdir()
    with pytest.raises(DocsiteError, match=why) as caught:
        publish.publish(run_dir, project / "ref", how())
    assert planted not in str(caught.value)
    assert sorted(p.name for p in (project / "ref").iterdir()) == []  # nothing kept, no manifest


def test_a_secret_split_by_colour_codes_is_not_published(project, monkeypatch):
    monkeypatch.setenv("DOCS_TEST_PASSWORD", "pg-Secret-4242")
    write_notebook(project, "1.3")
    run_dir = fake_run(project, {"1.3": "passed"})
    executed(run_dir, "1.3", f"value: pg-Se{ANSI_RED}cret{ANSI_OFF}-4242\n")
    with pytest.raises(DocsiteError, match="a secret value"):
        publish.publish(run_dir, project / "ref", how())


def test_a_path_without_a_placeholder_is_not_published(project):
    write_notebook(project, "1.3")
    run_dir = fake_run(project, {"1.3": "passed"})
    executed(run_dir, "1.3", f"copied to {project}/elsewhere\n")
    with pytest.raises(DocsiteError, match="the path"):
        publish.publish(run_dir, project / "ref", how(placeholders={str(project): str(project)}))


def test_publication_needs_a_run_folder_a_plain_name_and_a_known_kind(project, tmp_path):
    with pytest.raises(DocsiteError, match="not a run folder"):
        publish.publish(tmp_path, project / "ref", how())
    with pytest.raises(DocsiteError, match="run name"):
        how("../escape").check()
    with pytest.raises(DocsiteError, match="run kind"):
        how(kind="dream").check()


def test_the_banner_says_where_published_outputs_come_from(project):
    write_notebook(project, "1.3")
    pages = published_pages(project, {"1.3": "passed"}, placeholders={"/tmp/x": "/path/to/app"})
    html = pagehtml.banner_html(pages["1.3"], pages, lambda uri: uri)
    assert "Expected output</p>" in html and "a reference run executed this notebook on 2026-11-23" in html
    assert "in a test" in html and "<code>/path/to/app</code>" in html
    rehearsal = fake_run(project, {"1.3": "passed"}, project / "runs" / "r" / "phase1")
    publish.publish(rehearsal, project / "ref", how("rehearsal-phase1", kind="rehearsal"))
    pages = all_pages(project / "ref")
    html = pagehtml.banner_html(pages["1.3"], pages, lambda uri: uri)
    assert "Expected output (rehearsal)" in html and "a rehearsal run executed" in html


# --- Mermaid ----------------------------------------------------------------------------------


def npm_tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_mermaid_is_taken_out_of_the_npm_tarball(tmp_path):
    tgz = npm_tarball(
        tmp_path / "mermaid-11.0.0.tgz",
        {
            "package/dist/mermaid.min.js": b"var mermaid={};",
            "package/dist/mermaid.js": b"big",
            "package/LICENSE": b"MIT",
            "../evil": b"no",
        },
    )
    out = mermaid.extract_mermaid(tgz, tmp_path / "cache")
    assert out.read_bytes() == b"var mermaid={};"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["LICENSE", "mermaid.min.js"]
    assert not (tmp_path / "evil").exists()


def test_a_tarball_without_mermaid_is_refused(tmp_path):
    tgz = npm_tarball(tmp_path / "other.tgz", {"package/index.js": b"x"})
    with pytest.raises(DocsiteError, match=r"mermaid\.min\.js"):
        mermaid.extract_mermaid(tgz, tmp_path / "cache")


def test_mermaid_comes_from_the_cache_or_the_override(tmp_path, monkeypatch):
    monkeypatch.delenv(mermaid.ENV_MERMAID, raising=False)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mermaid.min.js").write_text("cached", encoding="utf-8")
    assert mermaid.ensure_mermaid(cache, npm="no-such-npm") == cache / "mermaid.min.js"
    with pytest.raises(DocsiteError, match="npm"):
        mermaid.ensure_mermaid(tmp_path / "empty", npm="no-such-npm")
    monkeypatch.setenv(mermaid.ENV_MERMAID, str(tmp_path / "nope.js"))
    with pytest.raises(DocsiteError, match=mermaid.ENV_MERMAID):
        mermaid.ensure_mermaid(cache)


def test_toc_is_read_from_the_rendered_headings():
    rendered = (
        '<h1 id="23-configure-ssh-access">2.3 Configure SSH access<a class="anchor-link" href="#x">¶</a></h1>'
        '<h2 id="step-3-the-sshconfig-entry">Step 3: the <code>~/.ssh/config</code> entry</h2>'
        '<h3 id="a-b">A &amp; B</h3><h4 id="deep">too deep</h4><h2 id="verification">Verification</h2>'
    )
    (title,) = pagehtml.html_toc_tokens(rendered)
    assert (title["id"], title["name"], title["level"]) == (
        "23-configure-ssh-access",
        "2.3 Configure SSH access",
        1,
    )
    step, verification = title["children"]
    assert (step["id"], step["name"]) == ("step-3-the-sshconfig-entry", "Step 3: the ~/.ssh/config entry")
    assert step["children"][0]["name"] == "A &amp; B" and step["children"][0]["children"] == []
    assert verification["id"] == "verification"


def test_the_runners_failure_summary_links_to_these_anchors():
    from helpers.runner.ledger import troubleshooting_anchor as runner_anchor

    for task in tasks.all_tasks():
        assert runner_anchor(task.id) == taskpages.troubleshooting_anchor(task.id)


def test_reference_run_without_an_engine_says_what_happens(monkeypatch, capsys):
    from helpers.docsite import reference

    monkeypatch.setattr(reference, "engine_problem", lambda: "no Docker engine answers (test)")
    assert main(["reference-run", "--if-engine"]) == 0
    assert "without outputs" in capsys.readouterr().out
    assert main(["reference-run"]) == 2
    err = capsys.readouterr().err
    assert "no Docker engine answers (test)" in err and "without outputs" in err


def test_links_into_the_app_repository_become_plain_text():
    site = {"index.html", "troubleshooting/index.html", "phase1/1.02-install-docker/index.html", "a/b.png"}
    html = (
        '<a href="docs/vm-setup.md">VM setup</a> <a href="../1.02-install-docker/">1.2</a> '
        '<a href="../../troubleshooting/#task-1-3">t</a> <a href="#verification">v</a> '
        '<a href="https://example.invalid/x">x</a> <a class="c" href="../../a/b.png">img</a>'
    )
    out = pagehtml.neutralize_foreign_links(html, "phase1/1.03-verify-docker/", site)
    assert '<span class="runbook-foreign-link" title="docs/vm-setup.md (a path in the app' in out
    assert ">VM setup</span>" in out and 'href="docs/vm-setup.md"' not in out
    for kept in (
        "../1.02-install-docker/",
        "../../troubleshooting/#task-1-3",
        "#verification",
        "https://example.invalid/x",
        "../../a/b.png",
    ):
        assert f'href="{kept}"' in out


def test_a_partial_reference_run_is_named_after_its_part(tmp_path):
    from helpers.docsite.reference import Setting, run_name
    from helpers.runner.plan import Selection

    setting = Setting(kind="rehearsal", description="", work=tmp_path)
    assert run_name(setting, "phase2") == "rehearsal-phase2"
    assert run_name(setting, "phase2", Selection(only=("2.18",))) == "rehearsal-phase2-only-2.18"
    assert run_name(setting, "phase2", Selection(stop="2.17")) == "rehearsal-phase2-start-to-2.17"
    how("rehearsal-phase2-start-to-2.17").check()  # a name publishing accepts


def rehearsal_workspace(project: Path, name: str, plant: str = "") -> Path:
    """A workspace as ``python -m helpers.rehearse phase2 --runs 1 --keep`` leaves it (by hand)."""
    work = project / name
    run = fake_run(project, {"1.1": "passed"}, folder=work / "runs" / "run-1")
    (run / "runner.log").write_text(f"app in {work / 'app'}; workspace {work}\n{plant}\n", encoding="utf-8")
    (work / "secrets.env").write_text(
        "GITHUB_TOKEN=ghp_" + "Zz9" * 12 + "\nROOT_USER_PASSWORD=Root-Aa1Bb2Cc3Dd4\n"
    )
    record = {
        "setting": "in a rehearsal: the APIs were local stand-ins",
        "runs": ["run-1"],
        "paths": {"workspace": str(work), "app": str(work / "app")},
        "secrets_file": str(work / "secrets.env"),
    }
    (work / "runs" / "rehearsal.json").write_text(json.dumps(record), encoding="utf-8")
    return work


def test_a_rehearsal_is_published_as_one_with_its_paths_hidden_and_its_own_secrets_known(project):
    from helpers.docsite import reference

    ref = project / "ref"
    with pytest.raises(DocsiteError, match=r"rehearsal\.json is missing.*python -m helpers\.rehearse phase2"):
        reference.publish_rehearsal(project / "nowhere", ref)
    # a value of the rehearsal's secrets file (not a token shape) left in a file: nothing is published
    leaky = rehearsal_workspace(project, "leaky", plant="password Root-Aa1Bb2Cc3Dd4")
    with pytest.raises(DocsiteError, match=r"runner\.log: a secret value"):
        reference.publish_rehearsal(leaky, ref)
    assert not (ref / "manifest.json").exists()
    work = rehearsal_workspace(project, "clean")
    (entry,) = reference.publish_rehearsal(work, ref)
    assert (entry["name"], entry["kind"]) == ("rehearsal-phase2", "rehearsal")
    assert entry["setting"] == "in a rehearsal: the APIs were local stand-ins"
    log = (ref / entry["folder"] / "runner.log").read_text(encoding="utf-8")
    assert "app in /path/to/app; workspace /path/to/rehearsal" in log and str(work) not in log
