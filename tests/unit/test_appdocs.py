"""helpers.app.appdocs: the docker section of README/CLAUDE.md (1.10, 1.11), the troubleshooting guide
(1.13)."""

from __future__ import annotations

import json
import re

import pytest

from helpers.app import appdocs, appfiles, vmtext
from helpers.app.appdocs import CLAUDE, README
from helpers.core.checks import Checklist

DOC = """# App

Intro.

## Local setup (Multipass VM)

Launch the VM:

```bash
# this is not a heading
multipass launch
```

### Create the VM

More VM text.

## Scripts

- `pnpm dev`
"""


def test_vm_section_replaced_rest_kept():
    out = appdocs.render(DOC, README)
    assert out.startswith("# App\n\nIntro.\n\n<!-- docker-workflow:start")
    assert "## Local development with Docker" in out and "Multipass" not in out
    assert out.endswith("<!-- docker-workflow:end -->\n\n## Scripts\n\n- `pnpm dev`\n")
    assert appdocs.render(out, README) == out, "second run: no change"


def test_heading_inside_code_block_is_not_a_heading():
    lines = DOC.splitlines(keepends=True)
    titles = [h.title for h in appdocs.headings(lines)]
    assert titles == ["App", "Local setup (Multipass VM)", "Create the VM", "Scripts"]


def test_subsection_about_the_vm_takes_its_parent():
    rewritten = DOC.replace("## Local setup (Multipass VM)", "## Local setup (Docker services)")
    start, _end, level = appdocs.find_section(rewritten.splitlines(keepends=True))
    assert (start, level) == (4, 2)
    assert appdocs.render(rewritten, README) == appdocs.render(DOC, README)


def test_section_level_follows_the_replaced_heading():
    doc = "# App\n\n## Guide\n\n### Local development\n\nold\n\n## Other\n"
    out = appdocs.render(doc, README)
    assert "### Local development with Docker" in out and "#### Prerequisites" in out
    assert "```bash\npnpm install" in out, "code blocks are not re-levelled"
    assert out.endswith("<!-- docker-workflow:end -->\n\n## Other\n")


def test_no_section_inserts_before_first_h2_and_keeps_crlf():
    doc = "# App\r\n\r\nIntro.\r\n\r\n## Usage\r\n\r\nx\r\n"
    out = appdocs.render(doc, CLAUDE)
    assert out.startswith("# App\r\n\r\nIntro.\r\n\r\n<!-- docker-workflow:start")
    assert "\r\n## Usage\r\n" in out and "\n" not in out.replace("\r\n", "")
    assert appdocs.render(out, CLAUDE) == out
    assert appdocs.render("", CLAUDE).startswith("<!-- docker-workflow:start")


def test_explicit_pattern_picks_the_heading():
    doc = "# App\n\n## Setup\n\nold\n\n## Other\n"
    out = appdocs.render(doc, README, pattern=r"^Setup$")
    assert "## Setup" not in out and "## Other" in out


def test_markers_refresh_an_outdated_block():
    old = (
        "# App\n\n<!-- docker-workflow:start (x) -->\n## Local development with Docker\n\nstale\n"
        "<!-- docker-workflow:end -->\n"
    )
    out = appdocs.render(old, README)
    assert "stale" not in out and out.count("docker-workflow:start") == 1


def test_templates_have_no_references_and_cover_the_workflow():
    facts = appdocs.Facts.defaults()
    for target in (README, CLAUDE):
        block = appdocs.managed_block(target, 2, facts)
        assert not vmtext.find_in_text(block) and "{{" not in block
        missing = [n for n, rx in appdocs.required(target, facts).items() if not re.search(rx, block)]
        assert not missing, (target.path, missing)


def _app(tmp_path, scripts: dict, env: str = "", **manifest) -> appdocs.Facts:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "package.json").write_text(
        json.dumps({"name": "x", "packageManager": "pnpm@8.15.4", "scripts": scripts, **manifest})
    )
    (tmp_path / ".env.example").write_text(env)
    return appdocs.Facts.of(tmp_path)


def test_sections_name_only_the_app_s_own_commands(tmp_path):
    """Per-process scripts, db:push, no worker script: never `pnpm db:migrate` or `pnpm worker`."""
    facts = _app(
        tmp_path / "a",
        {"dev:web": "next dev", "dev:worker": "tsx watch src/worker/main.ts", "db:push": "drizzle-kit push"},
        "DATABASE_URL=postgresql://demo:demo@192.168.64.2:5432/queue_demo\nREDIS_HOST=192.168.64.2\nREDIS_DB=1\n",
        engines={"node": ">=20"},
    )
    readme = appdocs.managed_block(README, 2, facts)
    assert "pnpm dev:web" in readme and "pnpm dev:worker" in readme and "pnpm db:push" in readme
    assert "pnpm db:migrate" not in readme and not re.search(r"pnpm (?:dev|worker)\b(?!:)", readme)
    assert "Node.js 20 or newer and pnpm 8 (`corepack enable`)" in readme
    claude = appdocs.managed_block(CLAUDE, 2, facts)
    assert "`DATABASE_URL` and `REDIS_HOST` point at `localhost`" in claude
    assert "the database is `queue_demo` (user\n  `demo`); Redis uses db 1" in claude
    # the worker started by `dev`, no migration script: one command, and no schema step at all
    both = _app(tmp_path / "b", {"dev": 'concurrently "next dev" "tsx watch worker/index.ts"'})
    block = appdocs.managed_block(README, 2, both)
    assert "pnpm dev              # the web app and the worker" in block
    assert "migrat" not in block and "push" not in block
    assert appdocs.required(README, both) == {
        "Docker as the prerequisite": r"\bDocker\b",
        "cp .env.example .env": r"cp \.env\.example \.env",
        "link to docs/troubleshooting-docker.md": r"docs/troubleshooting-docker\.md",
        **{
            c: re.escape(c) + r"(?![\w:-])"
            for c in ("pnpm docker:up", "pnpm docker:logs", "pnpm docker:reset", "pnpm dev")
        },
    }


def test_the_guide_is_rendered_for_the_app(tmp_path):
    facts = _app(
        tmp_path,
        {"dev": "next dev", "worker": "tsx src/worker.ts", "db:push": "drizzle-kit push"},
        "DATABASE_URL=postgresql://demo:demo@192.168.64.2:5433/queue_demo\nREDIS_URL=redis://192.168.64.2:6379/3\n",
    )
    guide = appdocs.rendered(appdocs.GUIDE_TEMPLATE, facts)
    assert "pg_dump -U demo queue_demo" in guide and "## Port 5433 or 6379 already in use" in guide
    assert "`DATABASE_URL=postgresql://demo:demo@localhost:5433/queue_demo`" in guide
    assert "`REDIS_URL=redis://localhost:6379/3`" in guide
    assert "recreate the schema with `pnpm db:push`" in guide
    assert "db:migrate" not in guide and "{{" not in guide
    problems = appdocs.parse_guide(guide)
    assert len(problems) == len(appdocs.TOPICS) and all(not p.missing for p in problems)


def test_fill_leaves_out_a_line_without_a_value_and_refuses_an_unknown_name():
    assert appdocs.fill("a {{x}}\nb {{y}}\nc", {"x": "1", "y": None}) == "a 1\nc"
    with pytest.raises(KeyError, match="'z'"):
        appdocs.fill("{{z}}", {})


def test_a_why_heading_is_not_the_setup_section():
    doc = "# App\n\nrun it.\n\n### scripts\n\n* `pnpm dev`\n\n### why a VM?\n\nparity.\n"
    assert appdocs.find_section(doc.splitlines(keepends=True)) is None
    out = appdocs.render(doc, README)
    assert out.index("docker-workflow:start") < out.index("### scripts") and "### why a VM?" in out
    assert "### Local development with Docker" in out, "the level of the file's first section"


def test_sections_on_the_fixture_and_their_checks(app_copy):
    for target in (CLAUDE, README):
        check = Checklist(target.path)
        appdocs.check_section(check, app_copy, target)
        assert check.failures, "before the task the check fails"
        changes = appdocs.plan_section(app_copy, target)
        assert "replaced by the docker workflow" in changes[0].why
        appfiles.apply(app_copy, changes)
        check = Checklist(target.path)
        appdocs.check_section(check, app_copy, target)
        assert not check.failures, check.failures
        assert not appdocs.plan_section(app_copy, target)[0].needed


def test_section_check_notices_a_lost_heading_and_a_gutted_block(app_copy):
    appfiles.apply(app_copy, appdocs.plan_section(app_copy, README))
    path = app_copy / "README.md"
    text = path.read_text().replace("## Project layout\n", "").replace("pnpm docker:reset", "pnpm nuke")
    path.write_text(text)
    check = Checklist("1.11")
    appdocs.check_section(check, app_copy, README)
    failed = {r.name: r.detail for r in check.failures}
    assert "missing: pnpm docker:reset" in failed[next(k for k in failed if k.startswith("it covers"))]
    assert failed["the rest of the file is kept (its other headings)"] == "lost: Project layout"


# --------------------------------------------------------------------------- the guide


def test_the_runbook_guide_is_complete():
    guide = appdocs.rendered(appdocs.GUIDE_TEMPLATE)
    problems = appdocs.parse_guide(guide)
    assert len(problems) == len(appdocs.TOPICS) == 10
    assert all(not p.missing for p in problems)
    assert not vmtext.find_in_text(guide)


def test_guide_written_checked_and_idempotent(app_copy):
    changes, kept = appdocs.plan_guide(app_copy)
    assert kept == [] and changes[0].action == "create"
    appfiles.apply(app_copy, changes)
    check = Checklist("1.13")
    appdocs.check_guide(check, app_copy)
    assert not check.failures and len(check.results) == 14
    again, _ = appdocs.plan_guide(app_copy)
    assert not again[0].needed


def test_guide_check_fails_on_a_missing_part_or_topic(app_copy):
    path = app_copy / appdocs.GUIDE
    path.parent.mkdir(exist_ok=True)
    text = appdocs.rendered(appdocs.GUIDE_TEMPLATE)
    text = text.replace("**Cause**: on Linux the socket", "On Linux the socket")  # no Cause label
    text = text[: text.index("## Disk full")]  # drop the last four problems
    path.write_text(text)
    check = Checklist("1.13")
    appdocs.check_guide(check, app_copy)
    failed = {r.name: r.detail for r in check.failures}
    assert (
        "Permission denied on /var/run/docker.sock (no Cause)"
        in failed["every section has **Symptom**, **Cause** and **Fix**"]
    )
    assert {
        "covers: disk full",
        "covers: images not pulling",
        "covers: container unhealthy",
        "covers: the app's settings still on the VM",
    } <= set(failed)


def test_different_guide_is_kept_unless_overwrite(app_copy):
    path = app_copy / appdocs.GUIDE
    path.parent.mkdir(exist_ok=True)
    path.write_text("# Our own guide\n")
    changes, kept = appdocs.plan_guide(app_copy)
    assert changes == [] and kept[0].status == "skipped" and "+## Docker engine not running" in kept[0].diff
    changes, _ = appdocs.plan_guide(app_copy, overwrite=True)
    appfiles.apply(app_copy, changes)
    assert path.read_text() == appdocs.rendered(appdocs.GUIDE_TEMPLATE, appdocs.Facts.of(app_copy))


@pytest.mark.parametrize("label", ["**Symptom**:", "**Symptom:**", "**Symptom**"])
def test_guide_labels_in_either_style(label):
    text = f"# G\n\n## P\n\n{label} a\n\n**Cause**: b\n\n**Fix**: c\n"
    assert appdocs.parse_guide(text)[0].parts == {"Symptom": "a", "Cause": "b", "Fix": "c"}
