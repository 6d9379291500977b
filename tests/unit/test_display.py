"""Tables and text blocks render the same in a kernel (Markdown) and a terminal (text)."""

from __future__ import annotations

from helpers.core import display


def test_markdown_table_escapes_pipes_and_newlines():
    md = display.markdown_table(("a", "b"), [("x|y", "1\n2")])
    assert md.splitlines()[2] == "| x\\|y | 1 2 |"


def test_text_table_aligns_columns():
    lines = display.text_table(("name", "v"), [("long-name", 1), ("x", 22)]).splitlines()
    assert lines[0].index("v") == lines[2].index("1") == lines[3].index("22")


def test_fence_is_longer_than_any_backtick_run_inside():
    assert display.fence_for("plain") == "```"
    assert display.fence_for("a diff with\n```bash\npnpm docker:up\n```") == "````"
    assert display.fence_for("`````") == "``````"


def test_outside_a_kernel_tables_print(capsys):
    display.show_table(("k", "v"), [("a", 1)], title="T")
    out = capsys.readouterr().out
    assert out.startswith("T\n") and "a  1" in out
