"""Helpers for the Implementation 3 runbook.

Notebooks narrate; these modules do the work. One module per domain:
``tasks`` (the registry), ``checks`` (verification tables), ``steps``
(changed/ok results of idempotent actions), ``display``, ``secrets``, and one
module per system the runbook touches.
"""

__version__ = "0.1.0"
