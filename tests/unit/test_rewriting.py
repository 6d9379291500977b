"""helpers.app.rewriting: each rule that rewrites a file, and the places it leaves to the person."""

from __future__ import annotations

import json

from helpers.app import appdocs, rewriting, vmtext
from helpers.app.rewriting import Context

RULES = vmtext.Rules.from_params(hosts=["192.168.64.2"], aliases=["box"])
GONE = {
    "docs/multipass.md": f"README.md#{appdocs.SECTION_ANCHOR}",
    "docs/vm-trouble.md": appdocs.GUIDE,
}
CTX = Context(
    rules=RULES,
    vm_scripts=frozenset({"vm:up", "vm:down", "up", "services"}),
    scripts=frozenset({"dev", "worker", "db:push"}),
    gone=GONE,
)


def md(text: str, rel: str = "docs/ops.md", accept=(), **kw):
    return rewriting.plan_markdown(rel, text, CTX, accept, **kw)


def test_a_row_an_item_or_a_command_line_for_a_removed_vm_script_goes():
    text = (
        "| Script | What |\n| --- | --- |\n| `pnpm dev` | web |\n"
        "| `pnpm vm:up` / `pnpm vm:down` | Start / stop the dev VM |\n\n"
        "- `pnpm up` – start the multipass box\n- `pnpm worker` – the worker\n\n"
        "```bash\npnpm dev:web\npnpm services           # start the VM\n```\n"
    )
    out, unsure, _ = md(text, "README.md")
    assert out == (
        "| Script | What |\n| --- | --- |\n| `pnpm dev` | web |\n\n"
        "- `pnpm worker` – the worker\n\n```bash\npnpm dev:web\n```\n"
    )
    assert unsure == []


def test_a_row_naming_a_removed_script_next_to_real_ones_is_listed():
    out, unsure, _ = md("- `pnpm vm:up` then `pnpm dev`\n", "README.md")
    assert out == "- `pnpm vm:up` then `pnpm dev`\n"
    assert [(u.where, u.proposal) for u in unsure] == [("README.md:1", "(remove these lines)")]


def test_links_to_removed_pages_point_at_what_replaced_them():
    text = (
        "- [The dev VM](multipass.md)\n"  # only the link: the item goes
        "- [Queues](queues.md)\n\n"
        "Setup is in [docs/multipass.md](multipass.md), fixes in [the notes](vm-trouble.md#disk).\n\n"
        "See [setup][vm].\n\n[vm]: multipass.md\n"
    )
    out, unsure, _ = md(text)
    assert out == (
        "- [Queues](queues.md)\n\n"
        f"Setup is in [Local development with Docker](../README.md#{appdocs.SECTION_ANCHOR}), fixes in "
        "[the notes](troubleshooting-docker.md).\n\n"
        f"See [setup][vm].\n\n[vm]: ../README.md#{appdocs.SECTION_ANCHOR}\n"
    )
    assert unsure == [] and rewriting.links_to("docs/ops.md", out, GONE) == []
    # from the README itself, the anchor alone
    readme, _, _ = md("Details in [docs/multipass.md](docs/multipass.md).\n", "README.md")
    assert readme == f"Details in [Local development with Docker](#{appdocs.SECTION_ANCHOR}).\n"


def test_a_vm_section_in_another_page_becomes_a_pointer_to_the_docker_workflow():
    text = (
        "# Getting started\n\n## The dev box\n\nRun `multipass launch`.\n\n"
        "```sh\nmultipass start x\n```\n\n## Tests\n\nok\n"
    )
    out, unsure, _ = md(text, "docs/getting-started.md")
    assert "## The dev box" not in out and "## Local services (Docker)" in out
    assert f"(../README.md#{appdocs.SECTION_ANCHOR})" in out and "(troubleshooting-docker.md)" in out
    assert out.endswith("\n\n## Tests\n\nok\n") and unsure == []
    assert md(out, "docs/getting-started.md")[0] == out, "stable"


def test_a_section_about_a_decision_is_listed_then_removed_when_accepted():
    text = "# App\n\n### why a VM?\n\nparity with prod.\n\n### scripts\n\nx\n"
    out, unsure, _ = md(text, "README.md")
    assert out == text and [u.where for u in unsure] == ["README.md:3-5"]
    out, unsure, accepted = md(text, "README.md", accept=("README.md:3",))
    assert out == "# App\n\n### scripts\n\nx\n" and unsure == [] and len(accepted) == 1


def test_prose_by_sure_rules_or_left_and_listed_with_a_proposal():
    text = (
        "# Ops\n\n## Local database\n\n"
        "In development PostgreSQL runs in the Multipass VM; the app reaches it at 192.168.64.2:5432.\n\n"
        "The local database lives in the dev VM. To start over, delete it in\n"
        "Coolify (http://192.168.64.2:8000), then run `pnpm db:push`.\n\n"
        "- The box is a Multipass VM running Coolify.\n"  # nothing but the VM: goes
        "- Redis db 2 is ours (other tools use the box).\n"  # an aside about the VM: listed
    )
    out, unsure, _ = md(text)
    assert "PostgreSQL runs in Docker; the app reaches it at localhost:5432." in out
    assert "The box is" not in out and "- Redis db 2 is ours (other tools use the box)." in out
    assert "The local database lives in the dev VM." in out, "not sure: left as it is"
    assert [(u.where, u.proposal) for u in unsure] == [
        ("docs/ops.md:7-8", "The local database lives in Docker."),
        ("docs/ops.md:11", "- Redis db 2 is ours."),
    ]
    accepted, left, _ = md(text, accept=("all",))
    assert left == [] and "The local database lives in Docker.\n\n- Redis db 2 is ours.\n" in accepted
    assert md(accepted)[1] == [], "after the proposals, nothing is left to list"


def test_a_table_cell_about_the_vm_gets_a_proposal_per_cell():
    row = "| Redis | same VM, db 1 | Coolify on the droplet, db 1 |\n"
    out, unsure, _ = md("| | local | production |\n| --- | --- | --- |\n" + row)
    assert out.endswith(row)
    proposal = "| Redis | Docker (`docker-compose.yml`), db 1 | Coolify on the droplet, db 1 |"
    assert unsure[0].proposal == proposal


def test_code_blocks_map_or_drop_commands_and_an_emptied_block_goes_crlf_kept():
    text = (
        "# T\r\n\r\nLaunch it:\r\n\r\n```bash\r\nmultipass shell vm\r\n"
        "sudo snap install multipass\r\n```\r\n\r\n"
        "Then:\r\n\r\n```bash\r\nmultipass start vm\r\necho ok\r\n```\r\n"
    )
    out, unsure, _ = md(text)
    assert out.count("```") == 2 and "docker compose up -d --wait\r\necho ok" in out
    assert "multipass" not in out.lower() and "\r\n\r\n\r\n" not in out
    assert "\n" not in out.replace("\r\n", "")
    assert unsure == []


def test_a_decision_record_is_kept_listed_and_marked_superseded_on_acceptance():
    adr = (
        "# 2. Local services in a Multipass VM\n\n## Status\n\nAccepted\n\n## Context\n\nx\n\n"
        "## Decision\n\nWe run Coolify inside a Multipass VM on every laptop.\n"
    )
    assert rewriting.is_decision_record("docs/adr/0002-dev-box.md", adr)
    out, unsure, _ = md(adr, "docs/adr/0002-dev-box.md")
    assert out == adr and [u.line for u in unsure] == [1, 13]
    assert all(rewriting.SUPERSEDED in u.proposal for u in unsure)
    out, unsure, accepted = md(adr, "docs/adr/0002-dev-box.md", accept=("all",))
    assert out == adr.replace("Accepted", rewriting.SUPERSEDED) and unsure == [] and len(accepted) == 2
    assert rewriting.is_history("docs/adr/0002-dev-box.md", out)
    assert md(out, "docs/adr/0002-dev-box.md") == (out, [], []), "history: left alone"


def test_readme_and_claude_get_their_section_from_the_facts():
    facts = appdocs.Facts.defaults()
    ctx = Context(rules=RULES, facts=facts)
    text = "# App\n\n## Local setup (Multipass VM)\n\nLaunch it.\n\n## Scripts\n\n- `pnpm dev`\n"
    out, _, _ = rewriting.plan_markdown("README.md", text, ctx, sections=True)
    assert "<!-- docker-workflow:start" in out and "Launch it." not in out and "## Scripts" in out
    assert rewriting.plan_markdown("docs/README.md", text, ctx, sections=True)[0] != out


def test_code_comments_sure_or_listed():
    ts = "// Points at the Multipass VM\n// The Multipass VM is slow\nconst h = '192.168.64.2';\n"
    out, unsure, _ = rewriting.plan_code("a.ts", ts, RULES)
    assert out == "// Points at the Docker services\n// The Multipass VM is slow\nconst h = 'localhost';\n"
    assert [(u.where, u.proposal) for u in unsure] == [("a.ts:2", "// The Docker services is slow")]


def test_package_json_loses_the_vm_scripts_whatever_their_name():
    text = json.dumps({"scripts": {"dev": "next dev", "up": "make up", "x": "echo"}}, indent=2) + "\n"
    out = rewriting.rewrite_package_json(text, RULES, frozenset({"up", "apps/x:x"}))
    assert json.loads(out)["scripts"] == {"dev": "next dev", "x": "echo"}
    package = rewriting.rewrite_package_json(text, RULES, frozenset({"apps/x:x"}), "apps/x")
    assert json.loads(package)["scripts"] == {"dev": "next dev", "up": "make up"}
