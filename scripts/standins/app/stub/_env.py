"""Configuration shared by the stand-in web process and worker.

Like the real app (Next.js loads ``.env.local`` then ``.env`` from the project root; the
worker calls ``dotenv/config``), the stand-ins read the app's env files, and variables
already set in the process environment win over the files.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

APP_ROOT = Path(__file__).resolve().parent.parent


def load() -> None:
    for name in (".env.local", ".env"):
        load_dotenv(APP_ROOT / name, override=False)


def required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SystemExit(
            f"{name} is not set: copy .env.example to .env in {APP_ROOT} (or export {name}) and start again"
        )
    return value


def queue_name() -> str:
    return os.environ.get("QUEUE_NAME", "").strip() or "jobs"
