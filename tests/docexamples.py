"""The commands the documentation shows, read from where a reader sees them.

Sources: the ``examples:`` block of ``runbook --help`` and of every subcommand's ``--help`` (built from
:func:`helpers.runner.cli.build_parser`, as the reader gets it), and the shell code blocks of README.md and
helpers/runner/README.md. ``tests/integration/test_examples.py`` runs every one; this module only reads.

An example line is a command and, after it, either a ``# comment`` or (the rehearsal's style) a
description separated by spaces: there the command is the longest prefix of words the ``runbook``
parser accepts, and the description must not start with an option (a misspelt option would otherwise
pass as prose).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from helpers.core.paths import PROJECT_ROOT
from helpers.runner import cli

READMES = (PROJECT_ROOT / "README.md", PROJECT_ROOT / "helpers" / "runner" / "README.md")
SHELL_FENCE = re.compile(r"^```(?:bash|sh|shell|console)\s*$")
VENV_BIN = ".venv/bin/"


class ExampleError(ValueError):
    """An example line that cannot be read as a command."""


@dataclass
class Example:
    command: str  # the command as written (continuation lines joined, comment removed)
    comment: str = ""  # its comment or description
    sources: list[str] = field(default_factory=list)  # where it is shown

    @property
    def key(self) -> str:
        """Examples that run the same program the same way are one (``.venv/bin/runbook`` = ``runbook``)."""
        return " ".join(w.removeprefix(VENV_BIN) for w in self.command.split())

    @property
    def words(self) -> list[str]:
        return shlex.split(self.command)

    @property
    def program(self) -> str:
        """``runbook``, ``make``, ``papermill``, ``mkdocs``, ``export``, ..."""
        return self.words[0].removeprefix(VENV_BIN)

    @property
    def subcommand(self) -> str:
        """The word after the program (``run``, ``plan``, a make target), or ``""``."""
        rest = [w for w in self.words[1:] if not w.startswith("-") and "=" not in w]
        return rest[0] if rest else ""

    def __str__(self) -> str:
        return self.command


def help_texts(parser: argparse.ArgumentParser | None = None) -> dict[str, str]:
    """``{"runbook --help": text, "runbook run --help": text, ...}``: every help a reader can ask for."""
    parser = parser or cli.build_parser()
    texts = {"runbook --help": parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                texts[f"runbook {name} --help"] = sub.format_help()
    return texts


def _split_comment(line: str) -> tuple[str, str]:
    """``command  # comment`` → (command, comment); a ``#`` inside quotes or a word is kept."""
    quote: str | None = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), ""


def _accepted(words: list[str]) -> bool:
    parser = cli.build_parser()
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(words)
        except SystemExit:
            return False
    return True


def split_description(line: str) -> tuple[str, str]:
    """A ``runbook`` example followed by prose: the longest prefix the parser accepts, and the prose."""
    words = line.split()
    for end in range(len(words), 1, -1):
        try:
            candidate = shlex.split(" ".join(words[1:end]))
        except ValueError:
            continue
        if _accepted(candidate):
            rest = " ".join(words[end:])
            if rest.startswith("-"):
                raise ExampleError(
                    f"{line!r}: {rest.split()[0]!r} is not an option of `{' '.join(words[:2])}`"
                )
            return " ".join(words[:end]), rest
    raise ExampleError(f"{line!r}: `runbook` accepts no prefix of it")


def example_of(line: str, source: str) -> Example:
    command, comment = _split_comment(line.strip())
    if not comment and command.startswith("runbook "):
        command, comment = split_description(command)
    return Example(command, comment, [source])


def help_examples(title: str, text: str) -> list[Example]:
    """The lines of the ``examples:`` block of one help text."""
    found: list[Example] = []
    inside = False
    for line in text.splitlines():
        if line.strip() == "examples:":
            inside = True
        elif inside and not line.strip():
            inside = False
        elif inside:
            found.append(example_of(line, title))
    return found


def shell_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, command line) of every shell code block, continuation lines joined."""
    commands: list[tuple[int, str]] = []
    inside, pending, start = False, "", 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("```"):
            inside = bool(SHELL_FENCE.match(line)) and not inside
            continue
        if not inside or (not line.strip() and not pending):
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        commands.append((start, (pending + line).strip()))
        pending = ""
    return commands


def readme_examples(path: Path) -> list[Example]:
    rel = path.relative_to(PROJECT_ROOT)
    return [example_of(line, f"{rel}:{n}") for n, line in shell_blocks(path.read_text(encoding="utf-8"))]


def all_examples() -> list[Example]:
    """Every example of the helps and READMEs, one per :attr:`Example.key`, with all its sources."""
    merged: dict[str, Example] = {}
    found = [e for title, text in help_texts().items() for e in help_examples(title, text)]
    found += [e for path in READMES for e in readme_examples(path)]
    for example in found:
        if example.key in merged:
            merged[example.key].sources += example.sources
        else:
            merged[example.key] = example
    return list(merged.values())


def help_block(text: str, heading: str) -> str:
    """The indented block under ``heading`` in a help text (e.g. the ``params.yaml (for -f):`` file)."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line[2:])
    return "\n".join(block) + "\n"
