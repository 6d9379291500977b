"""helpers.app.prodenv: the one list of the production variables, and the tables made from it."""

from __future__ import annotations

import re

import pytest

from helpers.app import prodenv
from helpers.core.paths import PROJECT_ROOT
from helpers.core.secrets import SECRETS


def test_production_env_reads_secret_sources_from_helpers_secrets():
    md = prodenv.production_env_markdown()
    for var in prodenv.PRODUCTION_ENV:
        row = next(line for line in md.splitlines() if line.startswith(f"| `{var.name}` |"))
        if var.secret:
            assert "🔒 secret" in row and SECRETS[var.secret_name].source in row
        else:
            assert "| no |" in row
    names = [v.name for v in prodenv.PRODUCTION_ENV]
    assert len(names) == len(set(names))
    assert not set(names) & set(prodenv.NOT_IN_PRODUCTION)


def test_every_variable_the_sample_app_reads_is_documented_for_production():
    app = PROJECT_ROOT / "tests" / "fixtures" / "sample-app"
    env_ts = (app / "packages" / "core" / "src" / "env.ts").read_text(encoding="utf-8")
    schema = dict(re.findall(r"^\s+([A-Z][A-Z0-9_]+): (z\..*)$", env_ts, re.M))  # name -> zod rule
    example = re.findall(r"^([A-Z][A-Z0-9_]+)=", (app / ".env.example").read_text(encoding="utf-8"), re.M)
    assert "DATABASE_URL" in schema and "DATABASE_URL" in example  # the patterns do read the files
    documented = {v.name for v in prodenv.PRODUCTION_ENV} | set(prodenv.NOT_IN_PRODUCTION)
    assert set(schema) | set(example) <= documented
    # web and worker parse the same schema: what it requires without a default, both apps get
    both = {v.name for v in prodenv.PRODUCTION_ENV if set(v.apps) == {"web", "worker"}}
    required = {name for name, rule in schema.items() if ".default(" not in rule}
    assert required and required <= both


def test_production_env_refuses_a_secret_the_runbook_does_not_know(monkeypatch):
    bad = (*prodenv.PRODUCTION_ENV, prodenv.EnvVar("X", ("web",), True, "?", secret_name="NOPE"))
    monkeypatch.setattr(prodenv, "PRODUCTION_ENV", bad)
    with pytest.raises(prodenv.ProductionEnvError, match="NOPE"):
        prodenv.production_env_markdown()
