"""``python -m helpers.docsite``: the reference run, the Mermaid cache, and how each page will be rendered.

    python -m helpers.docsite reference-run [--only ID ...] [--out DIR] [--timeout S] [--if-engine]
    python -m helpers.docsite publish-rehearsal WORKDIR [--out DIR]
    python -m helpers.docsite fetch-mermaid
    python -m helpers.docsite status

Exit codes of ``reference-run``: 0 every selected task passed (or, with ``--if-engine``, no engine:
nothing to do); 1 a task failed or did not run (what passed is published all the same); 2 the run
could not be made or published (the message says why); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from helpers.docsite.errors import DocsiteError
from helpers.docsite.mermaid import MERMAID_VERSION, ensure_mermaid
from helpers.docsite.published import DEFAULT_REFERENCE_DIR, reference_dir
from helpers.docsite.taskpages import task_pages


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.docsite",
        description="The runbook's documentation site: reference run, Mermaid, page status.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    ref = sub.add_parser(
        "reference-run",
        help="run phase 1 with the runner in a disposable copy of the sample app; publish it for the site",
        description="`runbook run phase1 --keep-going` in a disposable setting (a temporary copy of the "
        "sample app, a compose project of its own on free ports), then its run folder is published "
        f"into the reference folder (default {DEFAULT_REFERENCE_DIR}) with temporary paths as placeholders.",
    )
    ref.add_argument(
        "--only", nargs="+", default=[], metavar="ID", help="only these tasks (added to the last run)"
    )
    ref.add_argument("--out", type=Path, help=f"the reference folder (default {DEFAULT_REFERENCE_DIR})")
    ref.add_argument("--timeout", type=float, default=600, help="seconds a cell may take (default 600)")
    ref.add_argument(
        "--if-engine",
        action="store_true",
        help="without a Docker engine, say so and exit 0 (the build then renders bare notebooks)",
    )
    pub = sub.add_parser(
        "publish-rehearsal",
        help="publish the run folders a phase-2 rehearsal left (its outputs on the phase-2 pages)",
        description="Publish, as rehearsal outputs, the run folders that `python -m helpers.rehearse phase2 "
        "--runs 1 --no-operations --keep --workdir WORKDIR` left (WORKDIR/runs/rehearsal.json lists them): "
        "the workspace and app paths as placeholders, checked free of the rehearsal's secrets. `make docs` "
        "runs both.",
    )
    pub.add_argument("workdir", type=Path, help="the rehearsal's workspace (its --workdir)")
    pub.add_argument("--out", type=Path, help=f"the reference folder (default {DEFAULT_REFERENCE_DIR})")
    sub.add_parser("fetch-mermaid", help=f"cache mermaid.min.js {MERMAID_VERSION} from the npm registry")
    sub.add_parser("status", help="how each task page would be rendered")
    return parser


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def cmd_reference_run(args: argparse.Namespace) -> int:
    from helpers.docsite import reference
    from helpers.runner import report
    from helpers.runner.progress import observer_for

    problem = reference.engine_problem()
    if problem and args.if_engine:
        print(f"no reference run: {problem}; the docs will show the notebooks without outputs")
        return 0
    console = _console()
    ledger, entry = reference.reference_run(
        args.out, args.only, args.timeout, progress=lambda redactor: observer_for(console, redactor)
    )
    console.print(report.terminal_table(ledger))
    where = args.out or reference_dir() or DEFAULT_REFERENCE_DIR
    print(f"reference run {ledger.status}; published as {where / entry['folder']}")
    return 0 if ledger.status == "passed" else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "fetch-mermaid":
            print(ensure_mermaid())
        elif args.command == "publish-rehearsal":
            from helpers.docsite import reference

            where = args.out or reference_dir() or DEFAULT_REFERENCE_DIR
            for entry in reference.publish_rehearsal(args.workdir, where):
                folder = where / entry["folder"]
                print(f"rehearsal run {entry['name']} ({entry['status']}) published as {folder}")
        elif args.command == "status":
            for task_id, page in task_pages(reference_dir()).items():
                print(f"{task_id:>5}  {page.state:<9}  {page.src_uri}  {page.reason}")
        else:
            return cmd_reference_run(args)
    except DocsiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: the reference run's setting was torn down; nothing new was published",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
