"""The runbook's way to refuse bad input: the first cause, and the next step.

Every error a person is meant to read carries both, and its message says them in that order::

    raise ComposeError("no docker-compose.yml in /src/app", "run task 1.7 first")
    # ComposeError: no docker-compose.yml in /src/app. Next step: run task 1.7 first
"""

from __future__ import annotations

import traceback
from pathlib import Path

from helpers.core.paths import PROJECT_ROOT


class NextStepError(Exception):
    """``problem`` (what is wrong, first cause) and ``next_step`` (what to do about it)."""

    def __init__(self, problem: str, next_step: str) -> None:
        self.problem = problem
        self.next_step = next_step
        super().__init__(f"{problem}. Next step: {next_step}")


def crash_line(exc: BaseException) -> str:
    """An unexpected exception in one line: its type, its message and where in the project it was raised
    (the innermost frame under the project's folder), e.g.
    ``JSONDecodeError: Expecting value: line 2 column 1 (char 1) (helpers/rehearse/operations.py:80 in
    repo_digests)``. For a crash that is reported, not re-raised: the line must lead to the code."""
    line = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    ours = [frame for frame in traceback.extract_tb(exc.__traceback__) if _in_project(frame.filename)]
    if not ours:
        return line
    frame = ours[-1]
    where = Path(frame.filename).resolve().relative_to(PROJECT_ROOT)
    return f"{line} ({where}:{frame.lineno} in {frame.name})"


def _in_project(filename: str) -> bool:
    path = Path(filename).resolve()
    return path.is_relative_to(PROJECT_ROOT) and ".venv" not in path.relative_to(PROJECT_ROOT).parts
