"""Mermaid, served by the site itself (no CDN is reachable from where the site is read or built).

Material for MkDocs loads mermaid@11 from a CDN unless ``mermaid`` is defined; the hooks add
``mermaid.min.js`` at :data:`MERMAID_VERSION` to the site, taken from ``RUNBOOK_MERMAID_JS`` when set,
else from the cache in ``.work/docs/vendor/``, filled once with ``npm pack`` from the npm registry
this machine's npm is configured with (``python -m helpers.docsite fetch-mermaid``).
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from helpers.core.paths import WORK_DIR
from helpers.core.settings import Settings, env
from helpers.docsite.errors import DocsiteError

MERMAID_VERSION = "11.17.2"
MERMAID_SITE_PATH = "assets/vendor/mermaid.min.js"
MERMAID_LICENSE_SITE_PATH = "assets/vendor/mermaid.LICENSE.txt"
VENDOR_DIR = WORK_DIR / "docs" / "vendor"
ENV_MERMAID = Settings.mermaid_js.name
FETCH_COMMAND = "python -m helpers.docsite fetch-mermaid"


def mermaid_cache() -> Path:
    return VENDOR_DIR / f"mermaid-{MERMAID_VERSION}"


def ensure_mermaid(cache: Path | None = None, npm: str = "npm") -> Path:
    """``mermaid.min.js`` at the pinned version: from ``RUNBOOK_MERMAID_JS``, the cache, or ``npm pack``."""
    override = env.mermaid_js
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise DocsiteError(
                f"{ENV_MERMAID}={override} is not a file; unset it or point it at mermaid.min.js"
            )
        return path
    cache = cache or mermaid_cache()
    target = cache / "mermaid.min.js"
    if target.is_file():
        return target
    if shutil.which(npm) is None:
        raise DocsiteError(
            f"mermaid.min.js {MERMAID_VERSION} is not cached in {cache} and `{npm}` is not installed; "
            f"install Node.js/npm (apt-get install npm) and run `{FETCH_COMMAND}`"
        )
    with tempfile.TemporaryDirectory(prefix="rb-docs-npm-") as tmp:
        extract_mermaid(npm_pack(npm, Path(tmp)), cache)
    return target


def npm_pack(npm: str, folder: Path) -> Path:
    """``npm pack mermaid@<pinned>`` into ``folder``; the tarball's path."""
    proc = subprocess.run(
        [npm, "pack", f"mermaid@{MERMAID_VERSION}", "--silent"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tarballs = list(folder.glob("mermaid-*.tgz"))
    if proc.returncode != 0 or not tarballs:
        raise DocsiteError(
            f"`npm pack mermaid@{MERMAID_VERSION}` failed ({(proc.stderr or proc.stdout).strip()[-300:]}); "
            "check that the npm registry is reachable (npm config get registry)"
        )
    return tarballs[0]


def extract_mermaid(tarball: Path, cache: Path) -> Path:
    """Take only ``dist/mermaid.min.js`` and the licence out of the npm tarball."""
    wanted = {"package/dist/mermaid.min.js": "mermaid.min.js", "package/LICENSE": "LICENSE"}
    found = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if member.name in wanted and member.isfile():
                data = tar.extractfile(member)
                if data is not None:
                    found[wanted[member.name]] = data.read()
    if "mermaid.min.js" not in found:
        raise DocsiteError(
            f"{tarball.name} has no package/dist/mermaid.min.js; is it really the mermaid package?"
        )
    cache.mkdir(parents=True, exist_ok=True)
    for name, data in found.items():
        tmp = cache / f".{name}.part"
        tmp.write_bytes(data)
        tmp.replace(cache / name)
    return cache / "mermaid.min.js"
