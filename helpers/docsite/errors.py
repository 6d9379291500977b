"""The one error of the docs site."""

from __future__ import annotations


class DocsiteError(RuntimeError):
    """The docs build or the reference run cannot go on; the message says what to do."""
