"""The production environment of the app's web and worker (Coolify, task 2.16): one list, read everywhere.

:data:`PRODUCTION_ENV` says which variable each app gets, whether it is a secret (its value then
comes from a runbook secret named in :data:`helpers.core.secrets.SECRETS`, never from here) and
where the value comes from. :data:`NOT_IN_PRODUCTION` lists the development-only variables and why
production does not get them.

Readers: task 2.16 sets the variables in Coolify (:func:`helpers.cloud.coolify_apps.wanted_env`),
task 2.11 documents them in the app (:mod:`helpers.app.appprod`), and the runbook's site shows the
same tables (``docs/production-env.md``, through :mod:`helpers.docsite.markdown`).
"""

from __future__ import annotations

from dataclasses import dataclass

from helpers.core.secrets import SECRETS


class ProductionEnvError(ValueError):
    """The list names a secret the runbook does not know; the message says which and where to fix it."""


@dataclass(frozen=True)
class EnvVar:
    name: str
    apps: tuple[str, ...]
    secret: bool
    value: str  # what the value is (for a secret: its shape, never a value)
    source: str = ""  # where the value comes from (for a secret: from helpers.core.secrets.SECRETS)
    secret_name: str | None = None  # the runbook's secret holding the value
    build_time: bool = False


PRODUCTION_ENV: tuple[EnvVar, ...] = (
    EnvVar(
        "DATABASE_URL",
        ("web", "worker"),
        True,
        "postgresql://USER:PASSWORD@HOST:5432/DB (Coolify's internal URL)",
        secret_name="PROD_DATABASE_URL",
    ),
    EnvVar(
        "REDIS_URL",
        ("web", "worker"),
        True,
        "redis://default:PASSWORD@HOST:6379/0 (Coolify's internal URL)",
        secret_name="PROD_REDIS_URL",
    ),
    EnvVar(
        "SESSION_SECRET",
        ("web", "worker"),
        True,
        "32 random bytes, base64 (the app refuses fewer than 16 characters; the worker validates the "
        "same settings at start, so it needs it too)",
        secret_name="APP_SECRET",
    ),
    EnvVar("NODE_ENV", ("web", "worker"), False, "`production`", "fixed"),
    EnvVar(
        "PORT",
        ("web",),
        False,
        "`3000`",
        "fixed; `next start` listens on it; Coolify's exposed port for the web app (task 2.14) must match",
    ),
    EnvVar(
        "NEXT_PUBLIC_APP_URL",
        ("web",),
        False,
        "`https://DOMAIN`, or `http://DROPLET_IP:PORT` before a domain is set",
        "the web app's public URL from task 2.14 (read on the server at run time, not baked into the image)",
    ),
    EnvVar(
        "QUEUE_NAME",
        ("web", "worker"),
        False,
        "`jobs` (the app's default); identical in web and worker",
        "the app's `.env.example`: the web app enqueues on it, the worker consumes it",
    ),
    EnvVar("WORKER_CONCURRENCY", ("worker",), False, "`5` (the app's default)", "the app's `.env.example`"),
    EnvVar(
        "LOG_LEVEL", ("web", "worker"), False, "`info` (`debug`, `info`, `warn` or `error`)", "your choice"
    ),
)

# Variables of the app's development setup that production does not get, and why.
NOT_IN_PRODUCTION: dict[str, str] = {
    "COOLIFY_URL": "the old local Coolify dashboard's address; the apps never read it (the deploy workflow "
    "gets the production dashboard's URL from a GitHub secret, task 2.13)",
    "POSTGRES_USER": "local compose services only",
    "POSTGRES_PASSWORD": "local compose services only",
    "POSTGRES_DB": "local compose services only",
    "POSTGRES_PORT": "local compose services only",
    "REDIS_PORT": "local compose services only",
}


def not_in_production_markdown() -> str:
    """The table of :data:`NOT_IN_PRODUCTION`."""
    rows = ["| variable | why production does not get it |", "|---|---|"]
    rows += [f"| `{name}` | {why} |" for name, why in NOT_IN_PRODUCTION.items()]
    return "\n".join(rows)


def production_env_markdown() -> str:
    """The table of :data:`PRODUCTION_ENV` (a secret's source: :data:`helpers.core.secrets.SECRETS`)."""
    rows = ["| variable | web | worker | secret | value | where it comes from |", "|---|---|---|---|---|---|"]
    for var in PRODUCTION_ENV:
        if var.secret:
            if var.secret_name not in SECRETS:
                raise ProductionEnvError(
                    f"production variable {var.name}: secret {var.secret_name!r} is not in "
                    "helpers/core/secrets.py SECRETS; add it there or fix PRODUCTION_ENV "
                    "(helpers/app/prodenv.py)"
                )
            spec = SECRETS[var.secret_name]
            source = f"runbook secret `{spec.name}`: {spec.source}"
        else:
            source = var.source
        if var.build_time:
            source += (
                "; also a build argument of the web image (Next.js inlines `NEXT_PUBLIC_*` at build time)"
            )
        rows.append(
            "| `{}` | {} | {} | {} | {} | {} |".format(
                var.name,
                "✔" if "web" in var.apps else "",
                "✔" if "worker" in var.apps else "",
                "🔒 secret" if var.secret else "no",
                var.value,
                source,
            )
        )
    return "\n".join(rows)
