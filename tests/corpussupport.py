"""The corpus of Implementation-2 repositories (``tests/fixtures/corpus``): names, expectations, copies.

Import as ``from corpussupport import ...`` (like ``testsupport``). A copy is made the way the
runner prepares the sample app (:func:`helpers.runner.sampleapp.prepare`): copied, ``git init``-ed
and committed as the baseline, so the phase-1 tasks and the checks read git's view of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from testsupport import ROOT

from helpers.runner.sampleapp import prepare

CORPUS = ROOT / "tests" / "fixtures" / "corpus"


def names() -> list[str]:
    """Every repository of the corpus (a folder with a package.json and its ``<name>.yaml``)."""
    return sorted(p.name for p in CORPUS.iterdir() if (p / "package.json").is_file())


def expectations(name: str) -> dict[str, Any]:
    data = yaml.safe_load((CORPUS / f"{name}.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name}.yaml must hold a mapping"
    return data


def copy(name: str, dest: Path) -> Path:
    """A git-initialised copy of the corpus repository ``name`` at ``dest`` (which must not exist)."""
    path, created = prepare(dest, CORPUS / name)
    assert created, f"{dest} already existed"
    return path
