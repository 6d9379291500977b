"""MkDocs hooks of the runbook site (mkdocs.yml → hooks). The logic lives in helpers/docsite/hooks.py."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # a clean clone before `pip install -e .`
    sys.path.insert(0, str(ROOT))

from helpers.docsite.hooks import (  # noqa: E402
    on_config,
    on_files,
    on_page_content,
    on_page_markdown,
    on_serve,
)

__all__ = ["on_config", "on_files", "on_page_content", "on_page_markdown", "on_serve"]
