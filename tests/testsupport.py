"""Plain helpers shared by the tests (import as ``from testsupport import ...``).

Kept out of ``conftest.py`` on purpose: several folders have a conftest, and
``from conftest import ...`` would pick whichever was imported last.
"""

from __future__ import annotations

import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_APP = ROOT / "tests" / "fixtures" / "sample-app"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
