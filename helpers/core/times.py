"""Times as the vendors' APIs and Docker write them, read as aware datetimes (UTC when none is given)."""

from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(text: str) -> dt.datetime | None:
    """An API time: ``2026-12-02T10:25:16.000000Z``, ``...+00:00``, or Docker's ``... +0000 UTC``."""
    if not text:
        return None
    raw = str(text).strip().replace("Z", "+00:00")
    for candidate in (raw, raw.replace(" ", "T", 1)):
        try:
            value = dt.datetime.fromisoformat(
                candidate.rsplit(" ", 1)[0] if candidate.endswith(" UTC") else candidate
            )
        except ValueError:
            continue
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None
