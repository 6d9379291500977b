"""Plain helpers shared by the tests (import as ``from testsupport import ...``).

Kept out of ``conftest.py`` on purpose: several folders have a conftest, and
``from conftest import ...`` would pick whichever was imported last.
"""

from __future__ import annotations

from pathlib import Path

from helpers.host.ports import free_port  # noqa: F401  (re-exported for the tests)

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_APP = ROOT / "tests" / "fixtures" / "sample-app"
