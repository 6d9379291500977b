"""Where the project lives on disk: its root, and the git-ignored ``.work`` folder under it.

Everything else builds on these two. The installed package finds the root from its own location
(``helpers/core/paths.py`` → three levels up), so a checkout works wherever it is cloned.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORK_DIR = PROJECT_ROOT / ".work"  # git-ignored: state, caches, the sample app's copy, rehearsal files
# What a rehearsal leaves beside its run folders (``<workspace>/runs/rehearsal.json``): which run folders it
# wrote, its workspace and app paths, what was stood in. Written by helpers.rehearse, read by helpers.docsite
# (which may not import the rehearsal) to publish a rehearsal's outputs on the site.
REHEARSAL_RECORD = "rehearsal.json"
