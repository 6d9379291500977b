"""helpers.app.references: finding and rewriting Multipass/VM references (tasks 1.6 and 1.12)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from corpussupport import copy

from helpers.app import appfiles, references, rewriting, vmtext
from helpers.app.appfiles import Tree
from helpers.app.references import Rules
from helpers.core.checks import Checklist

# --------------------------------------------------------------------------- scan


def test_scan_finds_each_kind_with_file_and_line(app_copy):
    hits = references.scan(app_copy)
    where = {h.where: h.what for h in hits}
    assert where[".env.example:8"] == "VM address"  # DATABASE_URL on the VM
    assert where[".env.example:25"] == "Coolify on the VM"
    assert where["package.json:18"] == "multipass"
    assert "VM address" in where["CLAUDE.md:21"] and "multipass" in where["CLAUDE.md:21"]
    assert not [h for h in hits if h.path in ("docs/queues.md", "packages/core/src/db/schema.ts")]
    only_docs = references.scan(app_copy, under="docs")
    assert only_docs and all(h.path.startswith("docs/") for h in only_docs)


def test_scan_skips_ignored_binary_and_dependency_files(app_copy):
    (app_copy / ".env").write_text("DATABASE_URL=postgresql://u:p@192.168.64.5:5432/app\n")
    (app_copy / "node_modules" / "m").mkdir(parents=True)
    (app_copy / "node_modules" / "m" / "x.js").write_text("multipass\n")
    (app_copy / "blob.bin").write_bytes(b"\0multipass 192.168.64.5")
    paths = {h.path for h in references.scan(app_copy)}
    assert not paths & {".env", "node_modules/m/x.js", "blob.bin"}


def test_hit_rows_mask_passwords():
    rows = references.hit_rows(
        [references.Hit("a", 1, "postgresql://u:s3cret@192.168.64.5/app", "VM address")]
    )
    assert "s3cret" not in rows[0][2]


def test_vm_address_does_not_match_longer_numbers():
    assert vmtext.find_in_text("x 192.168.64.51 y")  # still a VM address
    assert not vmtext.find_in_text("10.192.168.64")
    assert not vmtext.find_in_text("192.168.640.5 and 192.168.65.2")


def test_rules_from_params_validate_patterns():
    rules = Rules.from_params(vm_ip=r"10\.0\.0\.\d+", extra_patterns=["coolify-vm"], replacements={"a": "b"})
    assert rules.vm_ip == r"10\.0\.0\.\d+" and rules.replacements == (("a", "b"),)
    assert vmtext.find_in_text("ssh coolify-vm", rules)
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Rules.from_params(extra_patterns=["(unclosed"])


# --------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    ("line", "want"),
    [
        (
            "DATABASE_URL=postgresql://postgres:pw@192.168.64.5:5432/app",
            "postgresql://postgres:pw@localhost:5432/app",
        ),
        ("REDIS_URL=redis://192.168.64.12:6379/0", "redis://localhost:6379/0"),
        ("pg_isready -h 192.168.64.5", "pg_isready -h localhost"),
        ("open http://192.168.64.5:8000/login now", f"open {vmtext.COOLIFY_PLACEHOLDER} now"),
    ],
)
def test_addresses(line, want):
    assert want in vmtext.rewrite_addresses(line)


@pytest.mark.parametrize(
    ("command", "want"),
    [
        ("multipass launch 22.04 --name vm", "docker compose up -d --wait"),
        ("sudo multipass start coolify-vm", "docker compose up -d --wait"),
        ("multipass stop coolify-vm", "docker compose stop"),
        ("multipass info coolify-vm", "docker compose ps"),
        ("multipass list", "docker compose ps"),
        ("multipass delete coolify-vm", "docker compose down -v"),
        ("multipass exec vm -- psql -U postgres app", "docker compose exec postgres psql -U postgres app"),
        ("multipass exec vm -- sudo redis-cli ping", "docker compose exec redis redis-cli ping"),
        ("multipass exec vm -- bash -c 'curl x | sh'", None),
        ("multipass purge", None),
        ("multipass shell coolify-vm", None),
    ],
)
def test_map_command(command, want):
    assert vmtext.map_command(command) == want


def test_command_lines_keep_prompt_and_newline_and_drop_unmappable():
    assert vmtext.rewrite_command_line("$ multipass start vm\r\n") == "$ docker compose up -d --wait\r\n"
    assert vmtext.rewrite_command_line("brew install --cask multipass\n") is None
    assert vmtext.rewrite_command_line("multipass stop vm && multipass set local.vm.disk=40G\n") == (
        "docker compose stop\n"
    )
    assert vmtext.rewrite_command_line("psql -h 192.168.64.5\n") == "psql -h localhost\n"


def test_code_comments_and_shell_scripts():
    ts = "// Points at the Multipass VM\n// run `multipass info vm` for the IP\nconst h = '192.168.64.5';\n"
    assert rewriting.rewrite_code("a.ts", ts) == "// Points at the Docker services\nconst h = 'localhost';\n"
    sh = (
        "#!/bin/sh\n# start the VM first\nmultipass start vm\nIP=$(multipass info vm | grep IPv4)\necho $IP\n"
    )
    assert (
        rewriting.rewrite_code("s.sh", sh)
        == "#!/bin/sh\n# start the VM first\ndocker compose up -d --wait\necho $IP\n"
    )


def test_commands_inside_configuration_are_mapped():
    yml = "steps:\n  - run: multipass start coolify-vm\n  - run: echo 192.168.64.5\n"
    assert rewriting.rewrite_code(".github/workflows/ci.yml", yml) == (
        "steps:\n  - run: docker compose up -d --wait\n  - run: echo localhost\n"
    )
    assert (
        rewriting.rewrite_code("cfg.json", '{"db": "multipass info vm"}\n') == '{"db": "docker compose ps"}\n'
    )


def test_package_json_scripts_using_multipass_are_removed():
    text = '{\n  "scripts": {\n    "dev": "next dev",\n    "vm": "multipass start vm"\n  }\n}\n'
    assert rewriting.rewrite("package.json", text) == '{\n  "scripts": {\n    "dev": "next dev"\n  }\n}\n'


def test_replacements_run_first():
    rules = Rules.from_params(replacements={r"coolify-vm": "the services"})
    assert rewriting.rewrite("notes.txt", "ssh coolify-vm\n", rules) == "ssh the services\n"


# --------------------------------------------------------------------------- pages and links


@pytest.mark.parametrize(
    ("rel", "text", "want"),
    [
        ("docs/vm-setup.md", "# Setup", True),
        ("docs/multipass.md", "# Anything", True),
        ("docs/coolify-local.md", "# Coolify in the VM", True),
        ("docs/architecture.md", "# Architecture\n\nruns in the Multipass VM", False),
        ("docs/queues.md", "# Jobs and queues", False),
        ("README.md", "# Setting up the VM", False),  # not under docs/
        ("docs/vm-setup.txt", "# x", False),
        ("docs/troubleshooting-docker.md", "# Troubleshooting the local Docker services", False),
    ],
)
def test_is_vm_page(rel, text, want):
    assert references.is_vm_page(rel, text) is want


# --------------------------------------------------------------------------- plans


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if ".git" in path.parts or not path.is_file():
            continue
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_cleanup_all_leaves_zero_hits_and_is_idempotent(app_copy):
    changes = references.plan_cleanup(app_copy, scope="all")
    deleted = {c.path for c in changes if c.after is None}
    assert deleted == {"docs/vm-setup.md", "docs/coolify-local.md", "scripts/multipass-cloud-init.yaml"}
    appfiles.apply(app_copy, changes)
    assert references.scan(app_copy) == []
    assert references.plan_cleanup(app_copy, scope="all") == []
    check = Checklist("1.12")
    references.check_no_references(check, app_copy)
    assert not check.failures
    assert (app_copy / "docs" / "queues.md").read_bytes() == (
        Path(__file__).parents[1] / "fixtures/sample-app/docs/queues.md"
    ).read_bytes()


def test_cleanup_docs_touches_docs_and_links_only(app_copy):
    kept = ("package.json", ".env.example", "packages/core/src/env.ts")
    before = {p: (app_copy / p).read_bytes() for p in kept}
    changes = references.plan_cleanup(app_copy, scope="docs")
    touched = {c.path for c in changes}
    assert touched == {
        "docs/vm-setup.md",
        "docs/coolify-local.md",
        "docs/architecture.md",
        "README.md",
        "CLAUDE.md",
    }
    appfiles.apply(app_copy, changes)
    assert {p: (app_copy / p).read_bytes() for p in before} == before
    readme = (app_copy / "README.md").read_text()
    assert "[Setting up the Multipass VM]" not in readme and "[Jobs and queues](docs/queues.md)" in readme
    check = Checklist("1.6")
    references.check_vm_docs_clean(check, app_copy)
    assert not check.failures, check.failures
    assert references.plan_cleanup(app_copy, scope="docs") == []


def test_vm_docs_check_fails_before_cleanup_and_on_lost_pages(app_copy):
    check = Checklist("1.6")
    references.check_vm_docs_clean(check, app_copy)
    assert {r.name for r in check.failures} == {
        "no VM setup pages in the docs",
        "no references in docs/ (but the lines listed as unsure)",
        "no links to the VM pages",
    }
    (app_copy / "docs" / "vm-setup.md").unlink()
    (app_copy / "docs" / "queues.md").unlink()
    check = Checklist("1.6")
    references.check_vm_docs_clean(check, app_copy)
    failed = {r.name: r.detail for r in check.failures}
    assert "docs/vm-setup.md" in failed["no links to the VM pages"]
    assert failed["the other docs pages are still there"] == "docs/queues.md"


def test_no_references_check_fails_with_file_and_line(app_copy):
    check = Checklist("1.12")
    references.check_no_references(check, app_copy)
    first = check.failures[0]
    assert first.name == "no Multipass / VM references left (but the lines listed as unsure)"
    assert ".env.example:5" in first.detail
    assert "replacements" in first.hint


def test_dry_run_overlay_proves_the_plan_without_writing(app_copy):
    before = _tree_hash(app_copy)
    changes = references.plan_cleanup(app_copy)
    results = appfiles.apply(app_copy, changes, dry_run=True)
    assert {r.status for r in results} == {"would change"}
    assert _tree_hash(app_copy) == before
    check = Checklist("1.12 dry")
    references.check_no_references(check, Tree(app_copy, planned=changes))
    assert not check.failures


def test_crlf_file_keeps_crlf(app_copy):
    (app_copy / "notes.md").write_bytes(b"# Notes\r\n\r\nThe DB is on 192.168.64.5.\r\n")
    changes = [c for c in references.plan_cleanup(app_copy) if c.path == "notes.md"]
    assert changes[0].after == "# Notes\r\n\r\nThe DB is on localhost.\r\n"


def test_rules_and_context_come_from_the_app(tmp_path):
    pulse = copy("pulse", tmp_path / "pulse")
    rules = references.rules_for(pulse)
    assert "10.13.37.5" in rules.hosts and rules.aliases == ("box",)
    assert vmtext.speaks_of_vm("Open Coolify on http://10.13.37.5:8000", rules)
    jobboard = copy("jobboard", tmp_path / "jobboard")
    ctx = references.context(jobboard, references.rules_for(jobboard))
    assert ctx.gone == {
        "docs/dev/local-vm/setup.md": "README.md#local-development-with-docker",
        "docs/dev/local-vm/troubleshooting.md": "docs/troubleshooting-docker.md",
    }
    assert ctx.vm_scripts == {"services", "services:stop", "services:ip"}
    assert ctx.vm_files == {"scripts/services.sh", "scripts/vm-address.sh"}
    plan = references.plan(jobboard, ctx.rules, "all", ctx=ctx)
    assert {c.path for c in plan.changes if c.after is None} == {
        "docs/dev/local-vm/setup.md",
        "docs/dev/local-vm/troubleshooting.md",
        "scripts/services.sh",
        "scripts/vm-address.sh",
    }
    assert [u.where for u in plan.unsure] == [
        ".env.example:14",
        "docs/architecture/overview.md:14",
        "docs/architecture/overview.md:15",
    ]
