"""The runbook's way to refuse bad input: the first cause, and the next step.

Every error a person is meant to read carries both, and its message says them in that order::

    raise ComposeError("no docker-compose.yml in /src/app", "run task 1.7 first")
    # ComposeError: no docker-compose.yml in /src/app. Next step: run task 1.7 first
"""

from __future__ import annotations


class NextStepError(Exception):
    """``problem`` (what is wrong, first cause) and ``next_step`` (what to do about it)."""

    def __init__(self, problem: str, next_step: str) -> None:
        self.problem = problem
        self.next_step = next_step
        super().__init__(f"{problem}. Next step: {next_step}")
