"""Plain helpers shared by the tests (import as ``from testsupport import ...``).

Kept out of ``conftest.py`` on purpose: several folders have a conftest, and
``from conftest import ...`` would pick whichever was imported last.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import pytest

from helpers.core.settings import env
from helpers.host.ports import free_port  # noqa: F401  (re-exported for the tests)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_APP = ROOT / "tests" / "fixtures" / "sample-app"


def unavailable(reason: str) -> NoReturn:
    """A prerequisite of this test is missing: skip with the reason, or fail where CI requires the engine.

    The one way a test steps aside by hand (``RUNBOOK_REQUIRE_ENGINE=1`` turns it into a failure, as it
    does for ``@pytest.mark.engine``); ``tests/unit/test_test_hygiene.py`` keeps it the only one.
    """
    if env.require_engine:
        pytest.fail(f"RUNBOOK_REQUIRE_ENGINE=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def needs(available: bool, reason: str) -> pytest.MarkDecorator:
    """``@needs(shutil.which("docker") is not None, "...")``: skip without it, unless CI requires it (then the
    test runs and fails on its own)."""
    return pytest.mark.skipif(not available and not env.require_engine, reason=reason)
