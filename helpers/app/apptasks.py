"""Tasks 1.6 to 1.13 in one table: plan and verify each by its id.

The notebooks call the domain helpers directly (so a reader sees what happens); this table is for
code that handles the tasks together: task 1.14 re-runs their verifications, and the tests run the
plans in every order to prove that the result does not depend on it.

>>> sorted(CHECKS)
['1.10', '1.11', '1.12', '1.13', '1.6', '1.7', '1.8', '1.9']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from helpers.app import appdocs, appfiles, envfile, packagejson, references, vmtext
from helpers.app.appfiles import FileChange, Tree
from helpers.core.checks import Checklist
from helpers.core.steps import StepResult

Plan = tuple[list[FileChange], list[StepResult]]
AppLike = Tree | str | os.PathLike[str]


def _rules(params: dict[str, Any]) -> vmtext.Rules:
    return vmtext.Rules.from_params(
        vm_ip=params.get("vm_ip", ""),
        extra_patterns=params.get("extra_patterns", ()),
        replacements=params.get("replacements", ()),
        docs_dir=params.get("docs_dir", "docs"),
    )


def _plan_env(app: AppLike, params: dict[str, Any]) -> Plan:
    return envfile.plan(
        app,
        create_env=params.get("create_env", True),
        rewrite_env=params.get("rewrite_env", False),
        password=params.get("password"),
        rules=_rules(params),
    )


PLANS: dict[str, Callable[[AppLike, dict[str, Any]], Plan]] = {
    "1.6": lambda app, p: (references.plan_cleanup(app, _rules(p), scope="docs"), []),
    "1.7": lambda app, p: appfiles.plan_compose(app, overwrite=p.get("overwrite", False)),
    "1.8": lambda app, p: packagejson.plan_docker_scripts(app, overwrite=p.get("overwrite_scripts", False)),
    "1.9": _plan_env,
    "1.10": lambda app, p: (appdocs.plan_section(app, appdocs.CLAUDE, p.get("section_pattern") or None), []),
    "1.11": lambda app, p: (appdocs.plan_section(app, appdocs.README, p.get("section_pattern") or None), []),
    "1.12": lambda app, p: (references.plan_cleanup(app, _rules(p), scope="all"), []),
    "1.13": lambda app, p: appdocs.plan_guide(app, overwrite=p.get("overwrite", False)),
}

CHECKS: dict[str, Callable[..., None]] = {
    "1.6": lambda check, app, **p: references.check_vm_docs_clean(check, app, _rules(p)),
    "1.7": lambda check, app, **p: appfiles.check_compose_file(check, app),
    "1.8": lambda check, app, **p: packagejson.check_docker_scripts(check, app),
    "1.9": lambda check, app, **p: envfile.check_env_example(
        check, app, rules=_rules(p), require_env=p.get("create_env", True)
    ),
    "1.10": lambda check, app, **p: appdocs.check_section(check, app, appdocs.CLAUDE),
    "1.11": lambda check, app, **p: appdocs.check_section(check, app, appdocs.README),
    "1.12": lambda check, app, **p: references.check_no_references(check, app, _rules(p)),
    "1.13": lambda check, app, **p: appdocs.check_guide(check, app),
}


def plan(task_id: str, app: AppLike, **params: Any) -> Plan:
    """The file changes task ``task_id`` would make, and its extra step results."""
    return PLANS[task_id](app, params)


def run(task_id: str, app: AppLike, dry_run: bool = False, **params: Any) -> list[StepResult]:
    """Plan and apply one task (what its notebook does, without the narration)."""
    changes, extra = plan(task_id, app, **params)
    return appfiles.apply(app, changes, dry_run=dry_run) + extra


def verify_into(check: Checklist, task_id: str, app: AppLike, **params: Any) -> None:
    """Record task ``task_id``'s checks into ``check`` (task 1.14 calls this for 1.6 to 1.13)."""
    CHECKS[task_id](check, app, **params)
