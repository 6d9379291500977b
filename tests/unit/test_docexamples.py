"""Reading the documentation's examples (tests/docexamples.py), which test_examples.py then runs."""

from __future__ import annotations

import pytest
from docexamples import ExampleError, all_examples, help_examples, help_texts, shell_blocks, split_description


def test_every_help_shows_examples() -> None:
    texts = help_texts()
    assert {"runbook --help", "runbook run --help", "runbook lab --help", "runbook rehearse --help"} <= set(
        texts
    )
    for title, text in texts.items():
        assert help_examples(title, text), f"{title} shows no examples"


def test_an_examples_block_ends_at_the_blank_line_and_comments_are_not_commands() -> None:
    text = (
        "usage: x\n\nexamples:\n  runbook list   # all phases\n  runbook resume\n\nparams.yaml:\n  shared:\n"
    )
    found = help_examples("t", text)
    assert [(e.command, e.comment) for e in found] == [("runbook list", "all phases"), ("runbook resume", "")]
    assert [e.program for e in found] == ["runbook", "runbook"] and found[0].subcommand == "list"


def test_a_description_column_is_told_from_the_command_by_the_parser() -> None:
    assert split_description("runbook rehearse --runs 1 --keep one run; keep it") == (
        "runbook rehearse --runs 1 --keep",
        "one run; keep it",
    )
    with pytest.raises(ExampleError, match="'--too' is not an option"):
        split_description("runbook rehearse --too 2.8   the infrastructure tasks")


def test_shell_blocks_join_continuations_and_skip_other_languages() -> None:
    text = "```bash\nmake a \\\n    B=1   # c\n\nmake d\n```\n```yaml\nshared: {}\n```\n"
    assert shell_blocks(text) == [(2, "make a      B=1   # c"), (5, "make d")]


def test_the_same_command_in_two_places_is_one_example_with_both_sources() -> None:
    examples = {e.key: e for e in all_examples()}
    resume = examples["runbook resume"]
    assert "runbook resume --help" in resume.sources and any(
        s.startswith("README.md:") for s in resume.sources
    )
