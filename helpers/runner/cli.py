"""``runbook``: run the runbook's phases from the command line.

    runbook list [phase]                 the tasks, their kind, dependencies and last status
    runbook plan phase1                  order, parameters, and what each task would change (dry-run)
    runbook run phase1 [options]         execute the phase's notebooks with papermill
    runbook resume [RUN_DIR]             continue the last run after a fix
    runbook lab                          JupyterLab on the notebooks
    runbook doctor [phase1|phase2|all]   what is wrong, from the bottom up (read-only)

Exit codes: 0 every selected task passed; 1 a task failed (or did not run); 2 bad usage,
parameters or selection (nothing ran); 130 interrupted (Ctrl-C; the ledger is consistent, resume).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENVIRONMENT = """\
environment:
  RUNBOOK_APP_DIR      the app repository phase-1/2 notebooks change (their app_dir default)
  RUNBOOK_RUNS_DIR     where run folders go (default: <project>/runs, git-ignored)
  RUNBOOK_DOCS_URL     published docs site; summaries then link troubleshooting there
  RUNBOOK_SECRETS_FILE secrets file (default: <project>/.env, git-ignored)
  RUNBOOK_REGISTRY     another task registry file (tests, trying the runner on other notebooks)
  secrets (DIGITALOCEAN_TOKEN, COOLIFY_API_TOKEN, ...: helpers/core/secrets.py) come from the
  environment or the secrets file, never from -p: the runner refuses them and scrubs their values
  from everything it writes. Every variable: CONTRIBUTING.md."""

OUTPUTS = """\
outputs (one folder per run, default runs/<UTC timestamp>-<phase>/):
  <task>.ipynb   executed notebooks (scrubbed of secrets)
  ledger.json    per task: status (passed/failed/skipped/not-run/interrupted), timings, parameters,
                 the failing cell and error; read by `runbook resume` and `runbook list`
  summary.md, summary.html   the report (the HTML page is self-contained)
  runner.log     the runner's log, notebook outputs included (scrubbed)"""

EXIT = """\
exit codes: 0 all selected tasks passed · 1 a task failed or did not run · 2 bad usage or parameters
(nothing ran) · 130 interrupted by Ctrl-C (resume continues). `plan`: 0 once every dry-run ran, even
when a check failed because an earlier task has not really run yet; 1 when a dry-run crashed."""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30, width=100)


def _epilog(examples: list[str], *notes: str) -> str:
    """The end of a ``--help``: its examples (a test runs every one), then ``notes``."""
    return "\n\n".join(["examples:\n" + "\n".join(f"  {e}" for e in examples), *notes])


def _subcommand(
    sub: Any, name: str, summary: str, description: str, examples: list[str], *notes: str
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=_epilog(examples, *notes),
        formatter_class=_formatter,
    )


def _add_parameters(p: argparse.ArgumentParser | Any, pairs: str, file: str) -> None:
    """``-p NAME VALUE`` (repeatable) and ``-f YAML``."""
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        default=[],
        help=pairs,
    )
    p.add_argument("-f", "--parameters-file", type=Path, metavar="YAML", help=file)


def _add_kernel_options(p: argparse.ArgumentParser | Any, jobs_default: int | None) -> None:
    """``--jobs`` and ``--fresh-kernels`` (run, plan, resume)."""
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=jobs_default,
        metavar="N",
        help="run up to N independent tasks at once, one kernel each"
        + (f" (default {jobs_default})" if jobs_default else " (default: as the run had)"),
    )
    p.add_argument(
        "--fresh-kernels",
        action="store_true",
        help="a new kernel for every notebook (slower; the default reuses one kernel "
        "with a clean namespace, environment and working directory per notebook)",
    )


KEEP_GOING = "after a failure, still run the tasks that do not depend on it"


def _add_run_options(p: argparse.ArgumentParser, plan: bool = False) -> None:
    p.add_argument("phase", help="phase1 or phase2")
    sel = p.add_argument_group("selection (cuts the run order that `runbook plan` prints)")
    sel.add_argument("--from", dest="start", metavar="ID", help="start at this task (inclusive)")
    sel.add_argument("--to", dest="stop", metavar="ID", help="stop after this task (inclusive)")
    sel.add_argument("--only", nargs="+", metavar="ID", default=[], help="run exactly these tasks")
    _add_parameters(
        p.add_argument_group("parameters"),
        "a parameter for every notebook that declares NAME (repeatable; `runbook list --params`)",
        "YAML with 'shared:' and per-task 'tasks:' parameters",
    )
    exe = p.add_argument_group("execution")
    if not plan:
        exe.add_argument(
            "--dry-run",
            action="store_true",
            help="set dry_run in every notebook that has it; tasks without it are skipped",
        )
        exe.add_argument("--keep-going", action="store_true", help=KEEP_GOING)
    _add_kernel_options(exe, 1)
    exe.add_argument("--timeout", type=float, metavar="SECONDS", help="fail a cell that runs longer")
    exe.add_argument(
        "--output-dir", type=Path, metavar="DIR", help="the run folder (default runs/<timestamp>-<phase>/)"
    )


PARAMS_YAML = """\
params.yaml (for -f):
  shared:
    app_dir: ~/src/demo-app
  tasks:
    "1.14":           # quote ids: YAML reads 1.10 as 1.1
      commit: true"""


def build_parser(rehearse: bool = True) -> argparse.ArgumentParser:
    """The ``runbook`` parser; ``rehearse=False`` leaves out ``runbook rehearse``, whose module (the
    stand-ins and the vendors' descriptions) takes a noticeable time to import: :func:`main` only
    imports it when the command line may need it."""
    parser = argparse.ArgumentParser(
        prog="runbook",
        formatter_class=_formatter,
        description="Run the Implementation 3 runbook: each task is a notebook; papermill chains a phase "
        "in the task registry's dependency order.",
        epilog=_epilog(
            [
                "runbook list",
                "runbook plan phase1 -p app_dir ~/src/demo-app",
                "runbook run phase1 -p app_dir ~/src/demo-app",
                "runbook resume",
            ],
            ENVIRONMENT,
            EXIT,
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = _subcommand(
        sub,
        "list",
        "the tasks, their kind, dependencies and last status",
        "List a phase's tasks in run order with their parallel group, kind, "
        "prerequisites and the status they had in the phase's last run.",
        ["runbook list", "runbook list phase2", "runbook list phase1 --params"],
        "The last status comes from the newest ledger under RUNBOOK_RUNS_DIR (default runs/).",
    )
    p.add_argument("phase", nargs="?", help="phase1 or phase2 (default: both)")
    p.add_argument("--params", action="store_true", help="also list each notebook's parameters and defaults")

    p = _subcommand(
        sub,
        "run",
        "execute a phase's notebooks",
        "Execute the phase's notebooks with papermill in dependency order, "
        "injecting parameters, and write the run folder. The first failure stops "
        "the chain (--keep-going runs the independent tasks); `runbook resume` "
        "continues after a fix.",
        [
            "runbook run phase1 -p app_dir ~/src/demo-app",
            "runbook run phase1 -f params.yaml --from 1.7 --to 1.13",
            "runbook run phase1 --only 1.4 1.5 --dry-run",
            "runbook run phase1 -p app_dir ~/src/demo-app -p commit true --jobs 2",
        ],
        PARAMS_YAML,
        OUTPUTS,
        ENVIRONMENT,
        EXIT,
    )
    _add_run_options(p)

    p = _subcommand(
        sub,
        "plan",
        "what would run, with which parameters, and what would change",
        "Show the run order (with parallel groups) and each task's parameters, then "
        "run every automated and docs notebook with dry_run=True to show what it would "
        "change. Nothing is changed: notebooks without a dry_run parameter and manual "
        "tasks are not executed. The dry-run notebooks go to a run folder "
        "(runs/<timestamp>-<phase>-plan/), which `resume` ignores.",
        [
            "runbook plan phase1 -p app_dir ~/src/demo-app",
            "runbook plan phase2 --from 2.10 --to 2.12 -p app_dir ~/src/demo-app   # no token needed",
        ],
        "A later task's dry-run may fail only because an earlier task has not really run "
        "yet (it is shown, and every task is still planned).",
        ENVIRONMENT,
    )
    _add_run_options(p, plan=True)

    p = _subcommand(
        sub,
        "resume",
        "continue the last run after a fix",
        "Continue a run from its failed, interrupted or not-run tasks. Tasks that "
        "passed with the same parameters are not run again; the failed task's "
        "previous executed notebook is kept as <task>.attemptN.ipynb.",
        [
            "runbook resume",
            "runbook resume runs/20250101-120000-phase1",
            "runbook resume -p app_dir ~/src/demo-app   # changed parameters rerun",
        ],
        "Without RUN_DIR: the newest run under RUNBOOK_RUNS_DIR (default runs/).",
        EXIT,
    )
    p.add_argument("run_dir", nargs="?", type=Path, help="the run folder (default: the last run)")
    _add_parameters(p, "change a shared parameter (tasks using it run again)", "more or changed parameters")
    p.add_argument("--keep-going", action="store_true", default=None, help=KEEP_GOING)
    _add_kernel_options(p, None)

    p = _subcommand(
        sub,
        "lab",
        "open JupyterLab on the notebooks",
        "Start JupyterLab with the project's notebooks folder as its root "
        "(bound to 127.0.0.1), without JupyterLab's prompt about news from the internet. "
        "Anything after -- goes to `jupyter lab`.",
        ["runbook lab", "runbook lab --port 8899 --no-browser", "runbook lab -- --ServerApp.token=''"],
    )
    p.add_argument("--port", type=int, default=8888, help="the port on 127.0.0.1 (default 8888)")
    p.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    p.add_argument("extra", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    from helpers.runner.doctor import add_subcommand as add_doctor

    if rehearse:
        from helpers.rehearse.__main__ import add_subcommand as add_rehearse

        add_rehearse(sub)
    add_doctor(sub)
    return parser


LIGHT_COMMANDS = ("list", "run", "plan", "resume", "lab", "doctor")  # need no stand-ins to parse


def _needs_rehearse(argv: list[str]) -> bool:
    """Whether the command line may be ``runbook rehearse`` (or a top-level help that lists it)."""
    words = [w for w in argv if not w.startswith("-")]
    return not words or words[0] not in LIGHT_COMMANDS


# -- commands ------------------------------------------------------------------------------------


def _console() -> Any:
    from rich.console import Console

    from helpers.core.settings import env

    # In CI logs and pipes (no terminal, no COLUMNS) rich would wrap tables at 80 columns.
    wide = None if sys.stdout.isatty() or env.columns else 120
    return Console(stderr=False, highlight=False, width=wide)


def _given(args: argparse.Namespace) -> Any:
    from helpers.runner import params as P

    given = P.from_pairs(tuple(pair) for pair in args.parameter or [])
    if args.parameters_file:
        given = P.load_file(args.parameters_file).merged(given)  # -p wins over the file
    return given


def _engine(args: argparse.Namespace) -> str:
    return "runbook-fresh" if getattr(args, "fresh_kernels", False) else "runbook"


def cmd_list(args: argparse.Namespace, console: Any) -> int:
    from rich.table import Table

    from helpers.runner import catalog as C
    from helpers.runner import params as P
    from helpers.runner.ledger import last_run, runs_dir
    from helpers.runner.plan import make_plan

    catalog = C.default()
    phases = [args.phase] if args.phase else list(catalog.phases)
    for phase in phases:
        if phase not in catalog.phases:
            console.print(f"unknown phase {phase!r}; choose one of {', '.join(catalog.phases)}", markup=False)
            return 2
        plan = make_plan(phase, catalog.in_phase(phase))
        last = last_run(runs_dir(catalog.root), phase)
        statuses = {r.id: r.status for r in last.tasks} if last else {}
        title = f"{catalog.phases[phase].title}" + (
            f" — last run {last.run_id}: {last.status}" if last else " — never run"
        )
        table = Table(title=title, title_justify="left")
        for col in ("group", "id", "kind", "task", "needs", "last status"):
            table.add_column(col, overflow="fold")
        for task in plan.tasks:
            notebook = catalog.notebook(task)
            table.add_row(
                str(plan.group_of(task.id)),
                task.id,
                task.kind,
                task.title,
                ", ".join(plan.needs(task.id)) or "—",
                statuses.get(task.id, "—") if notebook.is_file() else "no notebook yet",
            )
        console.print(table)
        if args.params:
            for task in plan.tasks:
                notebook = catalog.notebook(task)
                declared = P.declared_parameters(notebook) if notebook.is_file() else {}
                console.print(f"\n{task.id} {task.title} ({task.notebook})", markup=False, highlight=False)
                for d in declared.values():
                    console.print(
                        f"    {d.name} = {d.default}" + (f"   # {d.help}" if d.help else ""),
                        markup=False,
                        highlight=False,
                        soft_wrap=True,
                    )
                if not declared:
                    console.print(
                        "    (no parameters)" if notebook.is_file() else "    (no notebook yet)", markup=False
                    )
    return 0


def _print_plan_head(console: Any, ledger: Any) -> None:
    from rich.table import Table

    table = Table(
        title=f"{ledger.phase_title}: plan ({ledger.options.get('selection')})", title_justify="left"
    )
    for col in ("group", "id", "kind", "task", "parameters injected", "will"):
        table.add_column(col, overflow="fold")
    for r in ledger.tasks:
        params = ", ".join(f"{k}={v!r}" for k, v in r.parameters.items()) or "—"
        will = "dry-run" if r.status == "pending" else f"skip: {r.reason}"
        table.add_row(str(r.group), r.id, r.kind, r.title, params, will)
    console.print(table)


def _print_plan_result(console: Any, ledger: Any) -> None:
    for r in ledger.tasks:
        if r.status == "skipped":
            continue
        if r.status == "passed":
            would = [c for c in r.changes if c["status"] == "would change"]
            ok = r.steps.get("ok", 0)
            head = (
                f"{r.id} {r.title}: "
                + (f"would change {len(would)} thing(s)" if would else "no change")
                + (f", {ok} already done" if ok else "")
            )
            console.print(head, markup=False)
            for change in would:
                console.print(
                    f"    • {change['name']}" + (f": {change['detail']}" if change.get("detail") else ""),
                    markup=False,
                )
        else:
            err = r.error or {}
            console.print(
                f"{r.id} {r.title}: dry-run {r.status} ({err.get('ename')}: "
                f"{str(err.get('evalue', '')).strip().splitlines()[0] if err.get('evalue') else ''}) — may "
                "pass once the earlier tasks have really run",
                markup=False,
            )


def _finish_report(console: Any, ledger: Any) -> None:
    from helpers.runner import report

    console.print(report.terminal_table(ledger))
    text = report.failure_text(ledger)
    if text and ledger.mode == "run":
        console.print(text, markup=False, highlight=False)
    console.print(f"run folder: {ledger.run_dir}  (summary.html, ledger.json, runner.log)", markup=False)


def cmd_run(args: argparse.Namespace, console: Any, mode: str = "run") -> int:
    from helpers.runner import catalog as C
    from helpers.runner import runs
    from helpers.runner.chain import Options, RunInterrupted
    from helpers.runner.plan import Selection
    from helpers.runner.progress import observer_for
    from helpers.runner.redact import Redactor

    if args.jobs < 1:
        console.print("--jobs must be 1 or more", markup=False)
        return 2
    redactor = Redactor()
    request = runs.Request(
        phase=args.phase,
        selection=Selection(start=args.start, stop=args.stop, only=tuple(args.only)),
        given=_given(args),
        dry_run=getattr(args, "dry_run", False),
        mode=mode,
        output_dir=args.output_dir,
        options=Options(
            keep_going=getattr(args, "keep_going", False),
            jobs=args.jobs,
            engine=_engine(args),
            timeout=args.timeout,
        ),
        argv=sys.argv[1:],
    )
    catalog = C.default()
    options = request.options
    if mode == "plan":
        options = Options(
            keep_going=True,
            jobs=args.jobs,
            engine=_engine(args),
            timeout=args.timeout,
            ignore_failed_needs=True,
        )
    ledger, plan = runs.new_ledger(catalog, request, redactor)  # bad input exits here, before any kernel
    # The kernels boot on the other core while this process hands out the first task (once they are
    # launched: until then this process's interpreter is theirs) and loads papermill (run_chain).
    pool = runs.prestart(catalog, args.phase, options, redactor)
    if pool is not None:
        pool.wait_launched()

    if mode == "plan":
        _print_plan_head(console, ledger)
    observer = observer_for(console, redactor)
    try:
        ledger = runs.execute(catalog, ledger, plan, options, redactor, observer, request.argv, pool=pool)
    except RunInterrupted:
        from helpers.runner.ledger import Ledger

        ledger = Ledger.load(ledger.path)
        _finish_report(console, ledger)
        console.print("interrupted: the ledger is consistent; continue with `runbook resume`", markup=False)
        return 130
    if mode == "plan":
        _print_plan_result(console, ledger)
        console.print(f"dry-run notebooks: {ledger.run_dir}", markup=False)
        return runs.plan_exit_code(ledger)
    _finish_report(console, ledger)
    return runs.exit_code(ledger)


def cmd_resume(args: argparse.Namespace, console: Any) -> int:
    from helpers.runner import catalog as C
    from helpers.runner import runs
    from helpers.runner.chain import RunInterrupted
    from helpers.runner.ledger import Ledger
    from helpers.runner.progress import observer_for
    from helpers.runner.redact import Redactor

    redactor = Redactor()
    catalog = C.default()
    before = runs.find_run(catalog, args.run_dir)
    if before.status == "passed" and not (args.parameter or args.parameters_file):
        console.print(
            f"{before.run_id}: every selected task passed; nothing to resume "
            f"(start a new run with `runbook run {before.phase}`)",
            markup=False,
        )
        return 0
    try:
        ledger = runs.resume(
            catalog,
            before.run_dir,
            _given(args),
            keep_going=args.keep_going,
            jobs=args.jobs,
            engine="runbook-fresh" if args.fresh_kernels else None,
            observer=observer_for(console, redactor),
            redactor=redactor,
            argv=sys.argv[1:],
        )
    except RunInterrupted:
        ledger = Ledger.load(before.path)
        _finish_report(console, ledger)
        console.print("interrupted again: continue with `runbook resume`", markup=False)
        return 130
    _finish_report(console, ledger)
    return runs.exit_code(ledger)


LAB_CONFIG = Path(__file__).with_name("lab")  # Jupyter configuration of `runbook lab` (labconfig/)


def lab_command(root: Path, port: int, no_browser: bool, extra: list[str]) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={root / 'notebooks'}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
    ]
    if no_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI run as root; JupyterLab refuses to start otherwise
    return cmd + [e for e in extra if e != "--"]


def lab_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with :data:`LAB_CONFIG` first on ``JUPYTER_CONFIG_PATH``.

    Its ``labconfig/default_setting_overrides.json`` changes JupyterLab's defaults for learners: no
    prompt asking whether to fetch news from the internet (they can still turn it on in the settings;
    a user's own Jupyter configuration wins).
    """
    from helpers.core.settings import Settings

    more = Settings(environ).jupyter_config_path
    return {**environ, "JUPYTER_CONFIG_PATH": os.pathsep.join(filter(None, [str(LAB_CONFIG), more]))}


def cmd_lab(args: argparse.Namespace, console: Any) -> int:
    from helpers.runner import catalog as C

    cmd = lab_command(C.default().root, args.port, args.no_browser, args.extra)
    console.print("starting: " + " ".join(cmd), markup=False)
    sys.stdout.flush()
    os.execve(cmd[0], cmd, lab_environment(os.environ))
    return 0  # pragma: no cover - execve does not return


def main(argv: list[str] | None = None) -> int:
    # jsonschema (through nbformat) imports rfc3987_syntax when installed, which builds a grammar at
    # import time (about 1.5 s on these machines) for URI formats notebooks never use. The runner's
    # process does without it; kernels are not affected.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(rehearse=_needs_rehearse(words)).parse_args(words)
    console = _console()
    from helpers.core.tasks import RegistryError
    from helpers.runner.params import ParameterError
    from helpers.runner.runs import RunnerError

    try:
        if args.command == "list":
            return cmd_list(args, console)
        if args.command in ("run", "plan"):
            return cmd_run(args, console, mode=args.command)
        if args.command == "resume":
            return cmd_resume(args, console)
        if args.command == "lab":
            return cmd_lab(args, console)
        if args.command in ("rehearse", "doctor"):
            return args.func(args)
    except (RunnerError, ParameterError, RegistryError) as exc:
        console.print(f"runbook {args.command}: {exc}", markup=False, highlight=False)
        return 2
    except KeyboardInterrupt:  # before or after the chain (the chain handles its own Ctrl-C)
        console.print(f"runbook {args.command}: interrupted", markup=False)
        return 130
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
