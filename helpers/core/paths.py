"""Where the project lives on disk: its root, and the git-ignored ``.work`` folder under it.

Everything else builds on these two. The installed package finds the root from its own location
(``helpers/core/paths.py`` → three levels up), so a checkout works wherever it is cloned.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORK_DIR = PROJECT_ROOT / ".work"  # git-ignored: state, caches, the sample app's copy, rehearsal files
