"""helpers.core.poll: the one wait loop, on a fake clock."""

from __future__ import annotations

import pytest

from helpers.core.poll import PollTimeout, poll


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def answers(*values):
    it = iter(values)
    return lambda: next(it)


def test_returns_the_first_answer_that_holds() -> None:
    clock = Clock()
    got = poll(answers("new", "new", "active"), until=lambda s: s == "active", timeout=60, interval=5,
               sleep=clock.sleep, clock=clock)  # fmt: skip
    assert got == "active" and clock.sleeps == [5, 5]


def test_probes_once_even_without_time() -> None:
    clock = Clock()
    assert poll(lambda: True, timeout=0, interval=1, sleep=clock.sleep, clock=clock) is True
    with pytest.raises(PollTimeout) as err:
        poll(lambda: False, timeout=0, interval=1, sleep=clock.sleep, clock=clock, what="x")
    assert err.value.attempts == 1 and clock.sleeps == []


def test_times_out_with_the_last_answer_and_never_overshoots() -> None:
    clock = Clock()
    with pytest.raises(PollTimeout) as err:
        poll(lambda: {"status": "in_progress"}, until=lambda d: d["status"] == "finished", timeout=10,
             interval=4, what="deployment abc", sleep=clock.sleep, clock=clock)  # fmt: skip
    assert clock.sleeps == [4, 4, 2]  # the last sleep is cut to the deadline
    assert err.value.last == {"status": "in_progress"} and err.value.attempts == 4
    assert "deployment abc" in str(err.value) and "in_progress" in str(err.value)
    assert isinstance(err.value, TimeoutError)


def test_listed_exceptions_mean_not_yet_others_end_the_wait() -> None:
    clock = Clock()
    calls = iter([ConnectionRefusedError("refused"), ConnectionRefusedError("refused"), "up"])

    def probe():
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert poll(probe, timeout=30, interval=1, retry=(OSError,), sleep=clock.sleep, clock=clock) == "up"

    def broken():
        raise ValueError("bad answer")

    with pytest.raises(ValueError, match="bad answer"):
        poll(broken, timeout=30, interval=1, retry=(OSError,), sleep=clock.sleep, clock=clock)


def test_a_retried_exception_is_the_last_thing_seen_on_time_out() -> None:
    clock = Clock()

    def refused():
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(PollTimeout) as err:
        poll(refused, timeout=3, interval=1, retry=(OSError,), sleep=clock.sleep, clock=clock, what="ssh")
    assert isinstance(err.value.last, ConnectionRefusedError)
    assert "ConnectionRefusedError: connection refused" in str(err.value)


def test_backoff_grows_to_its_cap_and_every_answer_is_seen() -> None:
    clock = Clock()
    seen = []
    with pytest.raises(PollTimeout):
        poll(lambda: 0, timeout=30, interval=1, factor=2, max_interval=5, on_attempt=seen.append,
             sleep=clock.sleep, clock=clock)  # fmt: skip
    assert clock.sleeps[:5] == [1, 2, 4, 5, 5]
    assert len(seen) == len(clock.sleeps) + 1


def test_negative_times_are_refused() -> None:
    with pytest.raises(ValueError):
        poll(lambda: True, timeout=-1, interval=1)


def test_explain_says_what_the_wait_saw_last() -> None:
    ticks = iter(range(0, 1000, 10))
    with pytest.raises(PollTimeout, match=r"^still 'new' after 25s: re-run task 2\.2$") as info:
        poll(
            lambda: "new",
            until=lambda s: s == "active",
            timeout=25,
            interval=10,
            sleep=lambda s: None,
            clock=lambda: next(ticks),
            explain=lambda last: f"still {last!r} after 25s: re-run task 2.2",
        )
    assert isinstance(info.value, TimeoutError) and info.value.last == "new"
