"""papermill's entry points for the runner's engines (``papermill --engine runbook``).

papermill loads every ``papermill.engine`` entry point while its own ``papermill.engines`` module is
still being imported. :mod:`helpers.runner.engine` imports papermill, so pointing the entry point
at it directly would be circular whenever the runner is imported first. These classes import
nothing at module level and hand every call to the real engines.
"""

from __future__ import annotations

from typing import Any


def _real(name: str) -> Any:
    from helpers.runner import engine

    return engine.ENGINES[name]


class _Deferred:
    engine_name = "runbook"

    @classmethod
    def execute_notebook(cls, *args: Any, **kwargs: Any) -> Any:
        return _real(cls.engine_name).execute_notebook(*args, **kwargs)

    @classmethod
    def nb_kernel_name(cls, nb: Any, name: str | None = None) -> Any:
        return _real(cls.engine_name).nb_kernel_name(nb, name)

    @classmethod
    def nb_language(cls, nb: Any, language: str | None = None) -> Any:
        return _real(cls.engine_name).nb_language(nb, language)


class RunbookEngine(_Deferred):
    engine_name = "runbook"


class RunbookFreshEngine(_Deferred):
    engine_name = "runbook-fresh"
