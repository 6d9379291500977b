"""helpers.app.vmtext: what speaks of the VM, and the line rules: sure ones (a whole true sentence) and
proposals (shown, applied only when accepted)."""

from __future__ import annotations

import pytest

from helpers.app import vmtext
from helpers.app.vmtext import Rules

RULES = Rules.from_params(hosts=["harbor-dev.local", "10.13.37.5"], aliases=["box"])


@pytest.mark.parametrize(
    ("line", "section", "what"),
    [
        ("Install [Multipass](https://multipass.run) first.", "", "multipass"),
        ("Check the VM is Running.", "", "the VM"),
        ("tools on the box.", "", "the VM"),  # the team's word for it
        ("Use `harbor-dev.local` as host name.", "", "VM address harbor-dev.local"),
        ("Coolify manages them.", "Local services", "Coolify as the local setup"),
        ("Coolify manages them.", "Production", None),
        ("| Web | your machine | Coolify on the droplet |", "", None),
        ("The JVM heap and the VMware driver.", "", None),
        ("Run `pnpm docker:up`.", "", None),
    ],
)
def test_speaks_of_vm(line, section, what):
    found = vmtext.speaks_of_vm(line, RULES, section)
    assert (found is None) if what is None else (what in (found or "")), found


def test_aliases_come_from_a_definition_only():
    assert vmtext.learn_aliases(["The box is a Multipass VM called `pulse`."]) == ("box",)
    assert vmtext.learn_aliases(["restart the Multipass daemon", "the server is a VM"]) == ()


@pytest.mark.parametrize(
    ("line", "sure"),
    [
        # a code span's multipass command, mapped
        ("To open psql: `multipass exec dev -- psql -U demo app`.",
         "To open psql: `docker compose exec postgres psql -U demo app`."),
        # the VM's address in a URL or host:port; not the Coolify dashboard (what it becomes is not sure)
        ("the app reaches Redis at 192.168.64.5:6379.", "the app reaches Redis at localhost:6379."),
        ("Dashboard: http://10.13.37.5:8000", "Dashboard: http://10.13.37.5:8000"),
        # locative and object phrases stay grammatical
        ("PostgreSQL runs in the Multipass VM.", "PostgreSQL runs in Docker."),
        ("They point at the Multipass VM (see below).", "They point at the Docker services (see below)."),
        ("The Multipass VM is at 192.168.64.5.", "The Multipass VM is at localhost."),  # a subject: not sure
        # the VM dropped from an enumeration: what is left was claimed already
        ("| dev (VM + web + worker) | `pnpm dev` |", "| dev (web + worker) | `pnpm dev` |"),
        ("it starts the VM (predev), the dashboard and the worker together.",
         "it starts the dashboard and the worker together."),
        ("| Redis | same VM, db 1 |", "| Redis | same VM, db 1 |"),  # not an enumeration
        ("Get [Multipass](https://multipass.run/install).", f"Get [Docker]({vmtext.DOCKER_INSTALL_URL})."),
        # a warning about a destructive command speaks of the VM around it
        ("Never `multipass delete dev`: it holds data.", "Never `multipass delete dev`: it holds data."),
    ],
)  # fmt: skip
def test_sure_rewrite(line, sure):
    assert vmtext.sure_rewrite(line, RULES) == sure


@pytest.mark.parametrize(
    ("line", "proposal"),
    [
        ("Reproduce it on the development VM with real data.", "Reproduce it in Docker with real data."),
        ("start the VM (`multipass start dev`) and seed it.",
         "start the Docker services (`docker compose up -d --wait`) and seed it."),
        ("- Redis db 2 is ours (other tools use the box).", "- Redis db 2 is ours."),
        ("# Object storage (MinIO, also on the VM)", "# Object storage (MinIO)"),
        ("Open http://192.168.64.2:8000 now", f"Open {vmtext.COOLIFY_PLACEHOLDER} now"),
    ],
)  # fmt: skip
def test_proposed_rewrite(line, proposal):
    assert vmtext.proposed_rewrite(line, RULES) == proposal
    assert not vmtext.speaks_of_vm(proposal, RULES)


def test_rewrite_prose_keeps_a_ruled_comment_s_width():
    old = "# --- Services in the Multipass VM -------------"
    new = vmtext.rewrite_prose(old)
    assert len(new) == len(old) and new.startswith("# --- Services in Docker ---")


def test_repoint_paths_outside_links():
    gone = {"docs/vm-setup.md": "README.md#local-development-with-docker"}
    assert vmtext.repoint_paths("see docs/vm-setup.md.", gone) == "see README.md."
    assert vmtext.repoint_paths("[x](docs/vm-setup.md) and docs/vm-setup.mdx", gone) == (
        "[x](docs/vm-setup.md) and docs/vm-setup.mdx"
    )


def test_unsure_accepted_by_all_a_file_or_a_line_in_its_range():
    u = vmtext.Unsure("docs/a.md", 10, "one\ntwo", "(remove these lines)", "the VM")
    assert u.where == "docs/a.md:10-11"
    assert u.accepted_by(["all"]) and u.accepted_by(["docs/a.md"]) and u.accepted_by(["docs/a.md:11"])
    assert not u.accepted_by(["docs/a.md:12"]) and not u.accepted_by(["docs/b.md"]) and not u.accepted_by([])
    assert vmtext.parse_accept("README.md:19, ./docs/a.md") == ("README.md:19", "docs/a.md")
    assert vmtext.parse_accept(["all"]) == ("all",) and vmtext.parse_accept("") == ()
