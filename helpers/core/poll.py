"""The one wait loop: ask until the answer is the wanted one, or the time is up.

Every wait in the runbook (a droplet becoming active, a deployment finishing, a health URL answering,
an SSH server accepting connections...) is the same loop with other words::

    droplet = poll(lambda: client.droplet(droplet_id), until=lambda d: d["status"] == "active",
                   timeout=600, interval=5, what=f"droplet {droplet_id} to become active")

* ``probe`` runs at least once, also with ``timeout=0``;
* an exception listed in ``retry`` counts as "not yet" (the last one is kept for the message);
  any other exception ends the wait at once;
* ``interval`` may grow by ``factor`` up to ``max_interval`` (backoff), and the last sleep is cut so
  the wait never overshoots ``timeout``;
* ``on_attempt`` sees every answer (progress lines);
* on time-out :class:`PollTimeout` carries the last answer (or exception), the attempts and the time
  waited, so the caller can say what it saw last; ``explain(last)``, when given, is its message (what the
  wait saw, and the next step).

``sleep`` and ``clock`` can be swapped: unit tests run a wait of minutes in no time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class PollTimeout(TimeoutError):
    """The wait ran out. ``last`` is the last answer (or the last retried exception)."""

    def __init__(self, what: str, waited: float, attempts: int, last: Any, message: str = "") -> None:
        self.what = what
        self.waited = waited
        self.attempts = attempts
        self.last = last
        seen = f"{type(last).__name__}: {last}" if isinstance(last, BaseException) else repr(last)
        if len(seen) > 300:
            seen = seen[:297] + "..."
        super().__init__(
            message or f"waited {waited:.1f}s ({attempts} attempts) for {what}; last seen: {seen}"
        )


def poll(
    probe: Callable[[], T],
    *,
    until: Callable[[T], bool] = bool,
    timeout: float,
    interval: float,
    what: str = "the condition",
    retry: tuple[type[BaseException], ...] = (),
    on_attempt: Callable[[T], None] | None = None,
    explain: Callable[[Any], str] | None = None,
    factor: float = 1.0,
    max_interval: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``probe()`` until ``until(answer)``; the answer, or :class:`PollTimeout`."""
    if timeout < 0 or interval < 0:
        raise ValueError(f"timeout and interval must not be negative (got {timeout}, {interval})")
    start = clock()
    deadline = start + timeout
    attempts = 0
    last: Any = None
    pause = interval
    while True:
        attempts += 1
        try:
            answer = probe()
        except retry as exc:
            last = exc
        else:
            last = answer
            if on_attempt is not None:
                on_attempt(answer)
            if until(answer):
                return answer
        remaining = deadline - clock()
        if remaining <= 0:
            message = explain(last) if explain is not None else ""
            raise PollTimeout(what, clock() - start, attempts, last, message)
        sleep(min(pause, remaining))
        pause = pause * factor
        if max_interval is not None:
            pause = min(pause, max_interval)


def report_changes(
    progress: Callable[[str], None],
    describe: Callable[[T], str],
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[T], None]:
    """An ``on_attempt`` for :func:`poll` that shows ``[  12s] <description>`` each time it changes.

    The seconds count from the call of this function (make it just before the wait)."""
    start = clock()
    last: list[str | None] = [None]

    def show(answer: T) -> None:
        text = describe(answer)
        if text != last[0]:
            progress(f"[{clock() - start:5.0f}s] {text}")
            last[0] = text

    return show
