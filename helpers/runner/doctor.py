"""``runbook doctor [phase1|phase2|all]``: read-only checks from the bottom up, the first cause and its fix.

The diagnosis itself lives below (:mod:`helpers.services.doctor` for the local setup,
:mod:`helpers.ops.doctor` for production); this module prints it and turns it into an exit code:

* ``0`` every check passed;
* ``1`` something is broken: the first cause, its fix and the troubleshooting section are printed last;
* ``2`` bad usage.

``--json`` prints the findings as JSON instead (for scripts). Nothing is changed by any check.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

EPILOG = """\
examples:
  runbook doctor                      the local setup (phase 1), then production if phase 2 made one here
  runbook doctor phase1 --app-dir ~/src/implementation-2
  runbook doctor phase2
  runbook doctor all --json | jq '.[].first_cause'

exit codes: 0 nothing is wrong · 1 something is broken (the first cause is printed last) · 2 bad usage.
The order is bottom up: phase 1 engine, compose, containers, health, ports, env URLs, app health;
phase 2 DNS, droplet, SSH, Coolify, apps, deployments, public URL. A broken layer blocks what needs it
(⏸ not checked): fix the first ❌ first.
"""


def add_subcommand(subparsers: Any) -> None:
    """Register ``runbook doctor`` on the runner's subparsers (the handler is in ``func``)."""
    parser = subparsers.add_parser(
        "doctor",
        help="what is wrong, from the bottom up: the first cause and its fix (read-only)",
        description="Read-only checks of the local setup (phase1) and/or production (phase2), ordered from "
        "the bottom up; each broken check names its first cause, the fix and the troubleshooting section.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scope", nargs="?", default="all", choices=("phase1", "phase2", "all"))
    parser.add_argument("--app-dir", default="", metavar="PATH", help="the app repository (phase 1)")
    parser.add_argument("--env-file", default="", metavar="FILE", help="the app's env file (default .env)")
    parser.add_argument("--admin-user", default="", metavar="USER", help="the droplet's sudo user (phase 2)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.set_defaults(func=run)


def as_json(diagnoses: list[Any]) -> str:
    from helpers.services.diagnose import guide_link

    out = []
    for d in diagnoses:
        first = d.first_cause
        out.append(
            {
                "scope": d.scope,
                "ok": d.ok,
                "first_cause": {**asdict(first), "guide": guide_link(first.anchor)} if first else None,
                "findings": [{**asdict(f), "status": f.status} for f in d.findings],
            }
        )
    return json.dumps(out, indent=2)


def run(args: argparse.Namespace, console: Any = None) -> int:
    import sys

    from rich.console import Console
    from rich.table import Table

    from helpers.core.settings import env
    from helpers.ops.doctor import diagnose
    from helpers.services.diagnose import explain

    if console is None:  # as the other subcommands: pipes and CI logs get 120 columns, not rich's 80
        console = Console(highlight=False, width=None if sys.stdout.isatty() or env.columns else 120)
    diagnoses = diagnose(args.scope, app_dir=args.app_dir, env_file=args.env_file, admin_user=args.admin_user)
    if args.json:
        print(as_json(diagnoses))
        return 0 if all(d.ok for d in diagnoses) else 1
    for d in diagnoses:
        table = Table(title=f"runbook doctor {d.scope}", title_justify="left")
        for col in ("", "layer", "check", "seen"):
            table.add_column(col, overflow="fold")
        for row in d.rows():
            table.add_row(*row)
        console.print(table)
    if args.scope == "all" and len(diagnoses) == 1:
        console.print("phase 2: not checked (no droplet recorded here: phase 2 has not run)", markup=False)
    broken = [d for d in diagnoses if d.first_cause]
    for d in broken:
        console.print(f"\n{d.scope}: first cause: {explain(d.first_cause)}", markup=False, soft_wrap=True)
    if not broken:
        blocked = any(f.blocked for d in diagnoses for f in d.findings)
        console.print("\nnothing is wrong" if not blocked else "\nsome checks could not run", markup=False)
    return 0 if all(d.ok for d in diagnoses) else 1
