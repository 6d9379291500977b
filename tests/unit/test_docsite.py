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
from helpers.core.secrets import REDACTED, SECRETS
from helpers.core.tasks import UnknownTask
from helpers.docsite import site as docsite

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
    monkeypatch.setattr(docsite, "PROJECT_ROOT", tmp_path)
    return tmp_path


def all_pages(ref_dir=None):
    return docsite.task_pages(ref_dir)


# --- navigation -------------------------------------------------------------------------------


def test_nav_markers_expand_to_every_task_in_run_order(project):
    nav = [{"Home": "index.md"}, {"P1": "registry:phase1"}, {"P2": "registry:phase2"}, {"X": "x.md"}]
    pages = all_pages()
    out = docsite.expand_nav(nav, pages)
    assert out[0] == {"Home": "index.md"} and out[-1] == {"X": "x.md"}
    for section, phase in ((out[1]["P1"], "phase1"), (out[2]["P2"], "phase2")):
        expected = tasks.order(phase)
        assert [next(iter(e.values())) for e in section] == [pages[t.id].src_uri for t in expected]
        assert [next(iter(e)) for e in section] == [t.label for t in expected]
    assert sum(len(s) for s in (out[1]["P1"], out[2]["P2"])) == 33


def test_nav_marker_with_unknown_phase_is_a_clear_error(project):
    with pytest.raises(docsite.DocsiteError, match="phase3"):
        docsite.expand_nav([{"P3": "registry:phase3"}], all_pages())


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
    md = docsite.missing_page_markdown(page, pages)
    assert md.startswith("# 1.4 Create and start the services")
    assert "Not written yet" in md and "notebooks/phase1/1.04-start-services.ipynb" in md
    assert "automated" in md
    # prerequisites and dependents are links to their pages, relative to this page
    assert "[1.7 Create docker-compose.yml](1.07-create-compose-file.md)" in md
    assert "[1.5 Verify database connectivity](1.05-verify-connectivity.md)" in md
    assert "(../troubleshooting.md#task-1-4)" in md


def test_first_and_last_task_pages_say_so(project):
    pages = all_pages()
    assert "this is where the plan starts" in docsite.missing_page_markdown(pages["1.1"], pages)
    assert "this is the last task" in docsite.missing_page_markdown(pages["2.18"], pages)
    # 1.15 is needed by 2.1, across phases
    assert "(../phase2/2.01-digitalocean-account.md)" in docsite.missing_page_markdown(pages["1.15"], pages)


def test_existing_notebook_is_rendered_bare_without_a_reference_run(project):
    path = write_notebook(project, "1.3")
    page = all_pages(None)["1.3"]
    assert (page.state, page.source, page.src_uri) == ("bare", path, "phase1/1.03-verify-docker.ipynb")
    assert "switched off" in page.reason
    page = all_pages(project / "no-such-ref")["1.3"]
    assert page.state == "bare" and "no reference run" in page.reason


def reference(project: Path, task_id: str, status: str = "passed", sha: str | None = None) -> Path:
    task = tasks.get(task_id)
    ref = project / "ref"
    copy = ref / task.phase / f"{task.stem}.ipynb"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text((project / task.notebook).read_text(encoding="utf-8"), encoding="utf-8")
    entry = {
        "status": status,
        "file": copy.relative_to(ref).as_posix(),
        "source_sha256": sha or docsite.file_sha256(project / task.notebook),
    }
    if status != "passed":
        entry["error"] = "VerificationFailed: engine answers"
    manifest = {"run": {"finished": "2026-11-23 14:00 UTC", "engine": "20.10.24"}, "tasks": {task_id: entry}}
    (ref / docsite.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return ref


def test_fresh_reference_copy_is_rendered_instead_of_the_notebook(project):
    write_notebook(project, "1.3")
    ref = reference(project, "1.3")
    page = all_pages(ref)["1.3"]
    assert page.state == "reference"
    assert page.source == ref / "phase1" / "1.03-verify-docker.ipynb"
    assert page.src_uri == "phase1/1.03-verify-docker.ipynb"  # same address either way
    assert "2026-11-23 14:00 UTC" in page.reason and "20.10.24" in page.reason


def test_reference_copy_of_an_older_notebook_is_not_used(project):
    write_notebook(project, "1.3")
    ref = reference(project, "1.3", sha="0" * 64)
    page = all_pages(ref)["1.3"]
    assert page.state == "stale" and page.source == project / tasks.get("1.3").notebook


def test_failed_reference_task_is_rendered_bare_with_the_reason(project):
    write_notebook(project, "1.3")
    ref = reference(project, "1.3", status="failed")
    page = all_pages(ref)["1.3"]
    assert page.state == "bare" and "did not pass" in page.reason and "engine answers" in page.reason


def test_corrupt_manifest_says_what_to_do(project):
    (project / "ref").mkdir()
    (project / "ref" / docsite.MANIFEST).write_text("{not json", encoding="utf-8")
    with pytest.raises(docsite.DocsiteError, match="reference-run"):
        all_pages(project / "ref")


def test_reference_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(docsite.ENV_REFERENCE, raising=False)
    assert docsite.reference_dir() == docsite.DEFAULT_REFERENCE_DIR
    monkeypatch.setenv(docsite.ENV_REFERENCE, "off")
    assert docsite.reference_dir() is None
    monkeypatch.setenv(docsite.ENV_REFERENCE, str(tmp_path))
    assert docsite.reference_dir() == tmp_path


def test_title_comes_from_the_notebooks_first_heading(project):
    path = write_notebook(project, "1.5", heading="1.5 Verify database connectivity (PostgreSQL *and* Redis)")
    assert docsite.notebook_title(path) == "1.5 Verify database connectivity (PostgreSQL and Redis)"
    assert all_pages()["1.5"].title == "1.5 Verify database connectivity (PostgreSQL and Redis)"
    # a heading without the id gets it, so the nav always shows the id
    path = write_notebook(project, "1.5", heading="Check the databases")
    assert all_pages()["1.5"].title == "1.5 Check the databases"


def test_title_ignores_comments_in_fenced_code(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("```bash\n# not a title\n```\n\n# 1.2 Install Docker")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert docsite.notebook_title(path) == "1.2 Install Docker"
    path.write_text("not json", encoding="utf-8")
    assert docsite.notebook_title(path) is None


def test_troubleshooting_anchor_is_stable_and_checked():
    assert docsite.troubleshooting_anchor("1.4") == "task-1-4"
    assert docsite.troubleshooting_url("2.13") == "troubleshooting.md#task-2-13"
    with pytest.raises(UnknownTask):
        docsite.troubleshooting_anchor("1.99")


# --- markers ----------------------------------------------------------------------------------


def test_graph_and_task_table_come_from_the_registry(project):
    pages = all_pages()
    md = docsite.expand_markers(
        "<!-- runbook:graph phase2 -->\n\n<!-- runbook:tasks phase2 -->", "tasks.md", pages
    )
    assert md.startswith("```mermaid\n" + tasks.mermaid("phase2"))
    rows = [line for line in md.splitlines() if re.match(r"\| \d+ \|", line)]
    assert [re.search(r"\[(\d\.\d+) ", r).group(1) for r in rows] == [t.id for t in tasks.order("phase2")]
    assert "[2.9](phase2/2.09-github-actions-workflow.md)" in md  # needs of 2.13, linked
    assert "not written yet" in rows[0]


def test_task_count_and_levels_markers(project):
    md = docsite.expand_markers(
        "<!-- runbook:task-count --> / <!-- runbook:task-count phase2 -->\n<!-- runbook:levels phase2 -->",
        "index.md",
        all_pages(),
    )
    assert md.startswith("33 / 18\n")
    assert "2.9, 2.10, 2.11, 2.12 (independent of each other)" in md


def test_unknown_marker_is_an_error(project):
    with pytest.raises(docsite.DocsiteError, match="runbook:grpah"):
        docsite.expand_markers("<!-- runbook:grpah phase1 -->", "x.md", all_pages())


def test_every_task_has_a_troubleshooting_section_with_related_problems(project):
    markdown = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    out = docsite.expand_markers(markdown, "troubleshooting.md", all_pages())
    anchors = re.findall(r"\{#(task-[\d-]+)\}", out)
    assert anchors == [
        docsite.troubleshooting_anchor(t.id) for p in ("phase1", "phase2") for t in tasks.order(p)
    ]
    sections = {s.anchor for s in docsite.guide_sections(markdown)}
    for block in re.split(r"\n#### ", out)[1:]:
        related = re.findall(r"\]\(#([\w-]+)\)", block)
        assert related, f"no troubleshooting entry applies to {block.splitlines()[0]}"
        assert set(related) <= sections


def test_required_docker_problems_are_covered():
    sections = {
        s.anchor for s in docsite.guide_sections((DOCS / "troubleshooting.md").read_text(encoding="utf-8"))
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
        docsite.guide_sections("### Broken {#broken}\n<!-- applies-to: 1.4 1.44 -->\n")


def test_secrets_table_lists_every_secret():
    md = docsite.secrets_markdown()
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
    out = docsite.strip_cdn_scripts(NBCONVERT_HEAD)
    assert "http" not in out and "MathJax" not in out and "mathjax" not in out
    assert "<script>keep(1)</script>" in out and "<style>.x{}</style>" in out and "<p>Why.</p>" in out


def test_banner_goes_under_the_title(project, monkeypatch):
    write_notebook(project, "1.3")
    pages = all_pages(None)
    monkeypatch.setattr(docsite, "_pages", pages)
    html = docsite.banner_html(
        pages["1.3"], lambda uri: "../" + uri.replace(".md", "/").replace(".ipynb", "/")
    )
    assert 'href="../phase1/1.02-install-docker/"' in html
    assert "#task-1-3" in html and "Outputs are not included" in html
    out = docsite.insert_after_title('<div><h1 id="t">1.3</h1><p>Why.</p></div>', html)
    assert out.index("</h1>") < out.index("runbook-task") < out.index("<p>Why.</p>")
    assert docsite.insert_after_title("<p>no title</p>", "B").startswith("B")


# --- reference run pieces (no engine) ---------------------------------------------------------


def test_scrub_notebook_removes_secrets_tokens_and_local_paths(monkeypatch):
    monkeypatch.setenv("POSTGRES_PASSWORD", "pg-Secret-123")
    token = "dop_v1_" + "ab12" * 16
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": ["url = 'postgresql://postgres:hunter22@localhost/app'\n"],
                "outputs": [
                    {"output_type": "stream", "text": [f"token {token}\n", "/tmp/rb-x/app/README.md\n"]},
                    {
                        "output_type": "display_data",
                        "data": {
                            "text/markdown": "pg-Secret-123",
                            "application/json": {"k": ["pg-Secret-123"]},
                        },
                    },
                ],
            },
        ],
        "metadata": {"papermill": {"parameters": {"app_dir": "/tmp/rb-x/app", "n": 3}}},
    }
    out = docsite.scrub_notebook(nb, ["extra-value-1"], {"/tmp/rb-x/app": "/path/to/app", "/tmp/rb-x": "/w"})
    text = json.dumps(out)
    for secret in ("pg-Secret-123", token, "hunter22", "/tmp/rb-x"):
        assert secret not in text
    assert REDACTED in text and "/path/to/app/README.md" in text
    assert out["metadata"]["papermill"]["parameters"] == {"app_dir": "/path/to/app", "n": 3}


def test_leaked_finds_a_secret_in_any_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.ipynb").write_text('{"t": "the value s3cr3t-v"}', encoding="utf-8")
    (tmp_path / "clean.json").write_text("{}", encoding="utf-8")
    assert docsite.leaked(tmp_path, ["s3cr3t-v"]) == [f"{tmp_path / 'a' / 'x.ipynb'}: secret #0"]
    assert docsite.leaked(tmp_path, ["absent-value"]) == []


def test_reference_parameters_are_only_the_declared_ones(tmp_path):
    ctx = docsite.RunContext(work=tmp_path, app_dir=tmp_path / "app", project="rb-docs-ref-x", env={})
    declared = {"app_dir": {}, "dry_run": {}, "commit": {}, "health_url": {}}
    assert docsite.reference_parameters(ctx, declared) == {
        "app_dir": str(tmp_path / "app"),
        "dry_run": False,
        "commit": True,
    }
    assert docsite.reference_parameters(ctx, {}) == {}


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
    out = docsite.extract_mermaid(tgz, tmp_path / "cache")
    assert out.read_bytes() == b"var mermaid={};"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["LICENSE", "mermaid.min.js"]
    assert not (tmp_path / "evil").exists()


def test_a_tarball_without_mermaid_is_refused(tmp_path):
    tgz = npm_tarball(tmp_path / "other.tgz", {"package/index.js": b"x"})
    with pytest.raises(docsite.DocsiteError, match=r"mermaid\.min\.js"):
        docsite.extract_mermaid(tgz, tmp_path / "cache")


def test_mermaid_comes_from_the_cache_or_the_override(tmp_path, monkeypatch):
    monkeypatch.delenv(docsite.ENV_MERMAID, raising=False)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mermaid.min.js").write_text("cached", encoding="utf-8")
    assert docsite.ensure_mermaid(cache, npm="no-such-npm") == cache / "mermaid.min.js"
    with pytest.raises(docsite.DocsiteError, match="npm"):
        docsite.ensure_mermaid(tmp_path / "empty", npm="no-such-npm")
    monkeypatch.setenv(docsite.ENV_MERMAID, str(tmp_path / "nope.js"))
    with pytest.raises(docsite.DocsiteError, match=docsite.ENV_MERMAID):
        docsite.ensure_mermaid(cache)


def test_toc_is_read_from_the_rendered_headings():
    rendered = (
        '<h1 id="23-configure-ssh-access">2.3 Configure SSH access<a class="anchor-link" href="#x">¶</a></h1>'
        '<h2 id="step-3-the-sshconfig-entry">Step 3: the <code>~/.ssh/config</code> entry</h2>'
        '<h3 id="a-b">A &amp; B</h3><h4 id="deep">too deep</h4><h2 id="verification">Verification</h2>'
    )
    (title,) = docsite.html_toc_tokens(rendered)
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
        assert runner_anchor(task.id) == docsite.troubleshooting_anchor(task.id)


def test_reference_run_without_an_engine_says_what_happens(monkeypatch, capsys):
    monkeypatch.setattr(docsite, "engine_problem", lambda: "no Docker engine answers (test)")
    assert docsite.main(["reference-run", "--if-engine"]) == 0
    assert "without outputs" in capsys.readouterr().out
    assert docsite.main(["reference-run"]) == 2
    err = capsys.readouterr().err
    assert "no Docker engine answers (test)" in err and "without outputs" in err


def test_blocked_reason_names_the_root_causes():
    results = {"1.7": {"status": "missing"}, "1.4": {"status": "not-run"}, "1.3": {"status": "failed"}}
    assert (
        docsite.blocked_reason(["1.3", "1.4", "1.7"], results)
        == "1.3 (failed); 1.7 (notebook not written yet)"
    )


def test_links_into_the_app_repository_become_plain_text():
    site = {"index.html", "troubleshooting/index.html", "phase1/1.02-install-docker/index.html", "a/b.png"}
    html = (
        '<a href="docs/vm-setup.md">VM setup</a> <a href="../1.02-install-docker/">1.2</a> '
        '<a href="../../troubleshooting/#task-1-3">t</a> <a href="#verification">v</a> '
        '<a href="https://example.invalid/x">x</a> <a class="c" href="../../a/b.png">img</a>'
    )
    out = docsite.neutralize_foreign_links(html, "phase1/1.03-verify-docker/", site)
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
