"""Rendering for notebooks and terminals: one table function used everywhere.

In a kernel a table is shown as Markdown (with a plain-text twin, so nbval,
papermill logs and terminals read it too); elsewhere it is printed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any


def in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    rows = [[str(v).replace("\n", " ") for v in row] for row in rows]
    widths = [max([len(str(h))] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    return "\n".join(line.rstrip() for line in out)


def show_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Show a table; ``extra`` adds machine-readable mime bundles (e.g. the step results)."""
    rows = [list(r) for r in rows]
    md = markdown_table(headers, rows)
    txt = text_table(headers, rows)
    if title:
        md, txt = f"**{title}**\n\n{md}", f"{title}\n{txt}"
    if in_kernel():
        from IPython.display import display

        bundle: dict[str, Any] = {"text/markdown": md, "text/plain": txt}
        bundle.update(extra or {})
        display(bundle, raw=True)
    else:
        print(txt)


def fence_for(text: str) -> str:
    """A backtick fence longer than any run of backticks inside ``text`` (CommonMark)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def show_text(text: str, title: str | None = None, language: str = "") -> None:
    """Show a block of text (a diff, a command's output) as a fenced block."""
    if in_kernel():
        from IPython.display import display

        head = f"**{title}**\n\n" if title else ""
        plain = f"{title}\n{text}" if title else text
        fence = fence_for(text)
        display({"text/markdown": f"{head}{fence}{language}\n{text}\n{fence}", "text/plain": plain}, raw=True)
    else:
        if title:
            print(title)
        print(text)
