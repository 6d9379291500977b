"""Keep secrets out of everything the runner writes: executed notebooks, logs, ledger, reports.

A :class:`Redactor` knows the secret values configured when the run starts
(:func:`helpers.core.secrets.known_values`, plus every environment variable whose *name* looks
secret) and the token shapes of :data:`helpers.core.secrets.TOKEN_PATTERNS`. It scrubs text, nested
JSON-like structures (every string of a notebook, including tracebacks whose ANSI colour codes
could split a value), and whole folders as a last pass.

Executed notebooks never reach the disk unscrubbed: papermill writes them through an I/O handler
registered for paths starting with ``runbook-redact://`` (see :func:`redacted_path`).
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from helpers.core import secrets
from helpers.core.settings import Settings

SCHEME = "runbook-redact://"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def map_strings(value: Any, fix: Callable[[str], str]) -> Any:
    """``value`` with ``fix`` applied to every string in it (nested dicts, lists and tuples; keys kept)."""
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {k: map_strings(v, fix) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [map_strings(v, fix) for v in value]
    return value


def environment_secret_values(environ: dict[str, str] | None = None) -> set[str]:
    """Values of environment variables whose names look secret (``*_TOKEN``, ``*PASSWORD*``...).

    The runbook's own settings are not secrets although some names say SECRET
    (``RUNBOOK_SECRETS_FILE`` is a path, ``RUNBOOK_UPDATE_GITHUB_SECRETS`` a switch).
    """
    env = os.environ if environ is None else environ
    return {v for k, v in env.items() if v and secrets.is_secret_name(k) and Settings.by_name(k) is None}


class Redactor:
    """Scrubs a fixed set of secret values (and token shapes) from text and structures."""

    def __init__(self, values: Iterable[str] | None = None):
        if values is None:
            values = set(secrets.known_values()) | environment_secret_values()
        plain = {v for v in values if len(v) >= 4 and v not in secrets.PUBLIC_DEFAULTS}
        variants = set(plain)
        for v in plain:  # the forms a value takes once written as JSON or HTML
            variants.add(json.dumps(v)[1:-1])
            variants.add(html.escape(v))
            variants.add(html.escape(v, quote=False))
        self.values = sorted((v for v in variants if len(v) >= 4), key=len, reverse=True)

    def text(self, text: str) -> str:
        if "\x1b[" in text:
            bare = strip_ansi(text)
            cleaned = secrets.scrub(bare, values=self.values)
            if cleaned != bare:  # a secret hid between colour codes: keep the clean text, lose the colours
                return cleaned
        return secrets.scrub(text, values=self.values)

    def obj(self, value: Any) -> Any:
        """Scrub every string in a nested structure of dicts, lists and scalars."""
        return map_strings(value, self.text)

    def notebook_json(self, text: str) -> str:
        """A notebook's JSON text, scrubbed string by string, written the way nbformat writes it."""
        data = self.obj(json.loads(text))
        meta = data.get("metadata", {}).get("papermill", {})
        if isinstance(meta.get("output_path"), str) and meta["output_path"].startswith(SCHEME):
            meta["output_path"] = meta["output_path"][len(SCHEME) :]
        return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n"

    def suspicious(self, text: str) -> bool:
        """Whether ``text`` may hold a secret: a known value (in any written form) or a token shape."""
        return any(v in text for v in self.values) or any(p.search(text) for p, _ in secrets.TOKEN_PATTERNS)

    def file(self, path: Path) -> bool:
        """Scrub a file in place; True when it changed. Binary files are left alone."""
        path = Path(path)
        try:
            raw = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            return False
        if not self.suspicious(raw) and "\\u001b[" not in raw and "\x1b[" not in raw:
            return False  # the common case: written scrubbed already, nothing to parse
        if path.suffix == ".ipynb":
            try:
                cleaned = self.notebook_json(raw)
                if json.loads(cleaned) == json.loads(raw):
                    return False
            except ValueError:
                cleaned = self.text(raw)
        else:
            cleaned = self.text(raw)
        if cleaned == raw:
            return False
        write_atomic(path, cleaned)
        return True

    def tree(self, folder: Path) -> list[Path]:
        """Scrub every file under ``folder``; returns the files that needed it."""
        return [p for p in sorted(Path(folder).rglob("*")) if p.is_file() and self.file(p)]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that readers see either the old or the new file, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- papermill I/O: executed notebooks are scrubbed before they touch the disk -----------------

_active = threading.local()
_default: list[Redactor] = []


def activate(redactor: Redactor) -> None:
    """Make ``redactor`` the one papermill's writes use (process-wide; the runner sets it once per run)."""
    _default[:] = [redactor]


def active() -> Redactor:
    if not _default:
        _default.append(Redactor())
    return _default[0]


def redacted_path(path: Path) -> str:
    """The output path to hand papermill so that it writes through the scrubbing handler."""
    return SCHEME + str(Path(path).resolve())


class RedactingHandler:
    """papermill I/O handler for ``runbook-redact://<absolute path>``."""

    @staticmethod
    def _path(path: str) -> Path:
        return Path(path[len(SCHEME) :] if path.startswith(SCHEME) else path)

    def read(self, path: str) -> str:
        return self._path(path).read_text(encoding="utf-8")

    def write(self, buf: str, path: str) -> None:
        target = self._path(path)
        if not target.parent.is_dir():
            raise FileNotFoundError(f"output folder {target.parent} doesn't exist.")
        redactor = active()
        if redactor.suspicious(buf) or "\\u001b[" in buf or "\x1b[" in buf:
            text = redactor.notebook_json(buf)  # string by string (a secret may hide between colours)
        else:  # the common case: nothing to scrub, and papermill's JSON is nbformat's already
            text = buf.replace(f'"{SCHEME}', '"').rstrip("\n") + "\n"
        write_atomic(target, text)

    def listdir(self, path: str) -> list[str]:
        return [str(p) for p in self._path(path).iterdir()]

    def pretty_path(self, path: str) -> str:
        return str(self._path(path))


def register_io_handler() -> None:
    from papermill.iorw import papermill_io

    if not any(scheme == SCHEME for scheme, _ in papermill_io._handlers):
        papermill_io.register(SCHEME, RedactingHandler())


class RedactingFormatter(logging.Formatter):
    """Log formatter that scrubs every record (message, arguments and traceback)."""

    def __init__(self, redactor: Redactor, fmt: str | None = None):
        super().__init__(fmt or "%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(strip_ansi(super().format(record)))
