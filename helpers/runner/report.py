"""Human summaries of a run: Markdown, a self-contained HTML page, and the terminal table.

Each has a row per task (status, kind, time, what changed, a link to the executed notebook); a
failed task also gets the failing cell (``In [n]`` and its source), the error, the failed checks'
hints, and a link to its section of the troubleshooting page (``docs/troubleshooting.md``,
anchor ``#task-1-4``; ``RUNBOOK_DOCS_URL`` points the links at the published site instead).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from helpers.core.settings import env
from helpers.runner.ledger import Ledger, TaskRecord, troubleshooting_anchor

TROUBLESHOOTING_PAGE = "docs/troubleshooting.md"
ICONS = {
    "passed": "✅",
    "failed": "❌",
    "interrupted": "⏹",
    "skipped": "⏭",
    "not-run": "⚪",
    "pending": "…",
    "running": "▶",
}
KIND_ICONS = {"manual": "🖐 manual", "automated": "⚙ automated", "docs": "📄 docs"}
COLOURS = {
    "passed": "#1a7f37",
    "failed": "#cf222e",
    "interrupted": "#9a6700",
    "skipped": "#57606a",
    "not-run": "#57606a",
    "pending": "#57606a",
    "running": "#0969da",
}


def troubleshooting_ref(task_id: str) -> str:
    """Where to read about a task's problems, as a project path with the task's anchor."""
    return f"{TROUBLESHOOTING_PAGE}#{troubleshooting_anchor(task_id)}"


def troubleshooting_link(task_id: str, run_dir: Path, root: Path) -> str:
    """A link usable from a file in ``run_dir``: the published site when known, else the locally built
    site (``make docs``: the per-task anchors exist only in the built page), else the docs source."""
    site = env.docs_url.rstrip("/")
    anchor = troubleshooting_anchor(task_id)
    if site:
        return f"{site}/troubleshooting/#{anchor}"
    built = Path(root) / "site" / "troubleshooting" / "index.html"
    target = built if built.is_file() else Path(root) / TROUBLESHOOTING_PAGE
    return f"{os.path.relpath(target, run_dir)}#{anchor}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def what_happened(record: TaskRecord) -> str:
    """One line: step counts, checks, or the reason it did not run."""
    if record.status in ("skipped", "not-run") or (record.status == "interrupted" and not record.steps):
        return record.reason
    parts = [f"{n} {status}" for status, n in sorted(record.steps.items()) if n]
    if record.checks:
        passed = record.checks.get("passed", 0)
        parts.append(f"{passed} check{'' if passed == 1 else 's'} passed")
        if record.checks.get("failed"):
            parts.append(f"{record.checks['failed']} failed")
    if record.error and not record.checks.get("failed"):
        parts.append(f"{record.error.get('ename')}")
    return ", ".join(parts)


def failing_cell(record: TaskRecord) -> str:
    err = record.error or {}
    if err.get("exec_count") is not None:
        return f"In [{err['exec_count']}] (cell {err.get('cell_index')})"
    if err.get("cell_index") is not None:
        return f"cell {err['cell_index']}"
    return "before the first cell"


def _total(ledger: Ledger) -> float:
    return round(sum(r.duration or 0 for r in ledger.tasks if r.selected), 1)


def headline(ledger: Ledger) -> str:
    counts = ledger.counts()
    order = ("passed", "failed", "interrupted", "not-run", "skipped")
    bits = ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))
    mode = "plan (dry-run)" if ledger.mode == "plan" else ("dry-run" if ledger.dry_run else "run")
    return f"{ledger.phase_title} — {mode} {ledger.status.upper()}: {bits}"


def first_problem(ledger: Ledger) -> TaskRecord | None:
    for status in ("failed", "interrupted"):
        for record in ledger.tasks:
            if record.status == status:
                return record
    return None


# -- Markdown ------------------------------------------------------------------------------------


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(ledger: Ledger) -> str:
    root, run_dir = Path(ledger.root), ledger.run_dir
    lines = [
        f"# {headline(ledger)}",
        "",
        f"Run `{ledger.run_id}` · started {ledger.created} · updated {ledger.updated} · "
        f"task time {fmt_duration(_total(ledger))} · ledger: `ledger.json` · log: `runner.log`",
        "",
    ]
    if ledger.options.get("selection") and ledger.options["selection"] != "all tasks":
        lines += [f"Selection: `{ledger.options['selection']}`", ""]
    lines += [
        "| # | task | kind | status | time | what happened | executed notebook |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, record in enumerate(ledger.tasks, start=1):
        link = f"[{record.output}]({record.output})" if (run_dir / record.output).is_file() else ""
        lines.append(
            f"| {n} | {_md(record.id)} {_md(record.title)} | {KIND_ICONS.get(record.kind, record.kind)} | "
            f"{ICONS.get(record.status, '')} {record.status} | {fmt_duration(record.duration)} | "
            f"{_md(what_happened(record))} | {link} |"
        )
    for record in ledger.tasks:
        if record.status in ("failed", "interrupted") and record.error:
            err = record.error
            lines += [
                "",
                f"## {ICONS[record.status]} {record.id} {record.title}: {record.status}",
                "",
                f"* **Cell:** {failing_cell(record)} of [{record.output}]({record.output})",
                f"* **Error:** `{err.get('ename')}`: {_md(err.get('evalue', ''))[:800]}",
            ]
            for failure in (record.checks or {}).get("failures", []):
                hint = f" — next step: {failure['hint']}" if failure.get("hint") else ""
                lines.append(f"* ❌ {_md(failure['name'])}: {_md(failure.get('detail', ''))}{_md(hint)}")
            link = troubleshooting_link(record.id, run_dir, root)
            lines.append(f"* **Troubleshooting:** [{troubleshooting_ref(record.id)}]({link})")
            if err.get("source"):
                lines += ["", "```python", err["source"].rstrip(), "```"]
    changes = [(r, c) for r in ledger.tasks for c in r.changes]
    if changes:
        lines += [
            "",
            "## Changes" if ledger.mode == "run" and not ledger.dry_run else "## What would change",
            "",
        ]
        for record, change in changes:
            lines.append(
                f"* **{record.id}** {_md(change['name'])} — {change['status']}"
                + (f": {_md(change['detail'])}" if change.get("detail") else "")
            )
    if ledger.status in ("failed", "interrupted") and ledger.mode == "run":
        lines += [
            "",
            "Fix the cause, then continue with `runbook resume` (tasks that passed with the same "
            "parameters are not run again).",
        ]
    return "\n".join(lines) + "\n"


# -- HTML ----------------------------------------------------------------------------------------

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:72rem;
     padding:0 1rem;color:#1f2328}
h1{font-size:1.45rem} h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #d0d7de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa} .st{font-weight:600;white-space:nowrap} .meta{color:#57606a}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;border-radius:6px;font-size:13px}
.fail{border-left:4px solid #cf222e;padding-left:1rem}
.badge{display:inline-block;padding:0 .4rem;border-radius:1rem;color:#fff}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def html_page(ledger: Ledger) -> str:
    """A self-contained page (inline CSS, no scripts, no external resources)."""
    root, run_dir = Path(ledger.root), ledger.run_dir
    colour = COLOURS.get(ledger.status, "#57606a")
    out = [
        "<!doctype html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(ledger.run_id)}: {_e(ledger.status)}</title><style>{CSS}</style></head><body>",
        f"<h1><span class='badge' style='background:{colour}'>{_e(ledger.status)}</span> "
        f"{_e(headline(ledger))}</h1>",
        f"<p class='meta'>Run <code>{_e(ledger.run_id)}</code> · started {_e(ledger.created)} · updated "
        f"{_e(ledger.updated)} · task time {_e(fmt_duration(_total(ledger)))} · "
        "<a href='ledger.json'>ledger.json</a> · <a href='runner.log'>runner.log</a></p>",
        "<table><thead><tr><th>#</th><th>task</th><th>kind</th><th>status</th><th>time</th>"
        "<th>what happened</th><th>executed notebook</th></tr></thead><tbody>",
    ]
    for n, record in enumerate(ledger.tasks, start=1):
        exists = (run_dir / record.output).is_file()
        link = f"<a href='{_e(record.output)}'>{_e(record.output)}</a>" if exists else ""
        anchor = f" (<a href='#{_e(troubleshooting_anchor(record.id))}'>details</a>)" if record.error else ""
        status = f"{ICONS.get(record.status, '')} {_e(record.status)}"
        cells = [
            str(n),
            f"{_e(record.id)} {_e(record.title)}",
            _e(KIND_ICONS.get(record.kind, record.kind)),
            f"<span class='st' style='color:{COLOURS.get(record.status, '#000')}'>{status}</span>",
            _e(fmt_duration(record.duration)),
            _e(what_happened(record)) + anchor,
            link,
        ]
        row_id = _e(troubleshooting_anchor(record.id))
        out.append(f"<tr id='row-{row_id}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    for record in ledger.tasks:
        if record.status in ("failed", "interrupted") and record.error:
            err = record.error
            out += [
                f"<section class='fail' id='{_e(troubleshooting_anchor(record.id))}'>",
                f"<h2>{ICONS[record.status]} {_e(record.id)} {_e(record.title)}: {_e(record.status)}</h2>",
                f"<p><b>Cell:</b> {_e(failing_cell(record))} of "
                f"<a href='{_e(record.output)}'>{_e(record.output)}</a><br>",
                f"<b>Error:</b> <code>{_e(err.get('ename'))}</code></p>",
                f"<pre>{_e(err.get('evalue', ''))}</pre>",
            ]
            failures = (record.checks or {}).get("failures", [])
            if failures:
                out.append(
                    "<ul>"
                    + "".join(
                        f"<li>❌ {_e(f['name'])}: {_e(f.get('detail', ''))}"
                        + (f" — <i>next step:</i> {_e(f['hint'])}" if f.get("hint") else "")
                        + "</li>"
                        for f in failures
                    )
                    + "</ul>"
                )
            link = troubleshooting_link(record.id, run_dir, root)
            ref = _e(troubleshooting_ref(record.id))
            out.append(f"<p><b>Troubleshooting:</b> <a href='{_e(link)}'>{ref}</a></p>")
            if err.get("source"):
                out.append(
                    f"<details open><summary>failing cell</summary><pre>{_e(err['source'])}</pre></details>"
                )
            if err.get("traceback"):
                out.append(
                    f"<details><summary>traceback</summary><pre>{_e(err['traceback'])}</pre></details>"
                )
            out.append("</section>")
    changes = [(r, c) for r in ledger.tasks for c in r.changes]
    if changes:
        title = "Changes" if ledger.mode == "run" and not ledger.dry_run else "What would change"
        out.append(f"<h2>{title}</h2><ul>")
        for record, change in changes:
            diff = (
                f"<details><summary>diff</summary><pre>{_e(change['diff'])}</pre></details>"
                if change.get("diff")
                else ""
            )
            out.append(
                f"<li><b>{_e(record.id)}</b> {_e(change['name'])} — {_e(change['status'])}"
                f"{': ' + _e(change['detail']) if change.get('detail') else ''}{diff}</li>"
            )
        out.append("</ul>")
    if ledger.status in ("failed", "interrupted") and ledger.mode == "run":
        out.append(
            "<p>Fix the cause, then continue with <code>runbook resume</code> (tasks that passed with the "
            "same parameters are not run again).</p>"
        )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# -- terminal ------------------------------------------------------------------------------------


def terminal_table(ledger: Ledger) -> Any:
    from rich.table import Table

    table = Table(title=headline(ledger), title_justify="left", show_lines=False)
    for name in ("#", "task", "kind", "status", "time", "what happened"):
        table.add_column(name, overflow="fold")
    styles = {
        "passed": "green",
        "failed": "bold red",
        "interrupted": "yellow",
        "skipped": "dim",
        "not-run": "dim",
    }
    for n, record in enumerate(ledger.tasks, start=1):
        table.add_row(
            str(n),
            f"{record.id} {record.title}",
            KIND_ICONS.get(record.kind, record.kind),
            f"[{styles.get(record.status, '')}]{ICONS.get(record.status, '')} {record.status}[/]",
            fmt_duration(record.duration),
            what_happened(record),
        )
    return table


def failure_text(ledger: Ledger) -> str:
    """The terminal's explanation of the first failure (task, cell, error, where to read more)."""
    record = first_problem(ledger)
    if record is None or not record.error:
        return ""
    err = record.error
    lines = [
        f"{record.id} {record.title} {record.status} at {failing_cell(record)}: {err.get('ename')}",
        str(err.get("evalue", "")).strip()[:1500],
    ]
    if err.get("source"):
        src = err["source"].strip().splitlines()
        lines.append("cell source: " + " / ".join(src[:4]) + (" …" if len(src) > 4 else ""))
    lines.append(f"executed notebook: {ledger.run_dir / record.output}")
    lines.append(f"troubleshooting: {troubleshooting_ref(record.id)}")
    if ledger.mode == "run":
        lines.append("after fixing it: runbook resume")
    return "\n".join(lines)


def write(ledger: Ledger, redactor: Any = None) -> tuple[Path, Path]:
    """Write ``summary.md`` and ``summary.html`` into the run folder, scrubbed when given a redactor."""
    from helpers.runner.redact import write_atomic

    def clean(text: str) -> str:
        return redactor.text(text) if redactor is not None else text

    md, page = ledger.run_dir / "summary.md", ledger.run_dir / "summary.html"
    write_atomic(md, clean(markdown(ledger)))
    write_atomic(page, clean(html_page(ledger)))
    return md, page
