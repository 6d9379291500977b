"""The operations, rehearsed after phase 2: backup and drill, a release rolled back and forward, monitoring
twice, logs, the doctor on a broken app, and a teardown that leaves nothing behind.

Phase 2's twice-run stays as it is; this is a separate step after it, on the same production (the droplet
container, the Coolify stand-in's real containers, the DigitalOcean stand-in). Each operation runs through
the runner as a person would (``runbook run operations --only ID``, its own run folder ``ops-NN-<id>``), and
the rehearsal reads the effect from outside as well:

1. the first push's images run: for web and worker, the digest the rehearsal's registry serves for the
   deployed tag equals the registry digest of the running container's image (read on the engine);
   ``runbook doctor phase2`` finds nothing wrong;
2. **backup** (a backup now), then the **restore drill**: every table's rows and checksum equal;
3. a **release**: a code change (a comment in the web app's health route, found in the app as task 2.12
   finds it) committed and pushed: the workflow's build job builds both images from that commit and pushes
   them to the rehearsal's registry (``sha-<commit>`` and ``main``), its deploy job calls the webhooks,
   and the apps run the new images: their digests are the pushed ones, read from the registry and from
   the running containers;
4. **rollback** to the previous digest, then **roll forward** (``-p target forward``), each checked on the
   engine (the image the app containers run);
5. **monitoring** with the restart drill, then again: the second run changes nothing;
6. **logs**;
7. the web app **stopped** through Coolify's API: ``runbook doctor phase2`` exits 1 and names it as the first
   cause; started again;
8. **teardown**, a dry run (nothing removed), then for real with the droplet's name typed: afterwards the
   DigitalOcean stand-in lists no droplet, firewall, uptime check, alert policy or key of the rehearsal,
   and no container of its droplet is left on the engine.

What was seen is written to ``runs/operations.json`` beside the run folders.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.core.paths import PROJECT_ROOT
from helpers.rehearse.dockerapi import Docker
from helpers.rehearse.session import Rehearsal

ROLES = ("web", "worker")


@dataclass
class OpResult:
    label: str
    folder: Path | None
    seconds: float
    problems: list[str] = field(default_factory=list)


def _docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def running_image(container: str) -> str:
    """The image id the container runs, read on the engine; "" while there is no such container (a deploy
    replaces an app's container: for a moment the engine has none by that name)."""
    info = Docker().inspect(container)
    return str(info["Image"]) if info else ""


def repo_digests(image: str) -> list[str]:
    """The registry digests (``name@sha256:...``) of a local image; none for no image or one the engine no
    longer has."""
    info = Docker().image(image) if image else None
    return [str(digest) for digest in (info or {}).get("RepoDigests") or []]


def _state(rehearsal: Rehearsal, name: str) -> dict[str, Any]:
    path = rehearsal.state_dir / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _wait(what: str, probe: Callable[[], bool], timeout: float = 180.0) -> bool:
    from helpers.core.poll import PollTimeout, poll

    try:
        poll(probe, timeout=timeout, interval=1.0, what=what)
    except PollTimeout:
        return False
    return True


class Operations:
    """Runs the sequence of the module docstring against one rehearsal; :attr:`results` and :attr:`seen`."""

    def __init__(
        self,
        rehearsal: Rehearsal,
        runner_args: Sequence[str] = (),
        validate: Callable[[], list[str]] | None = None,
        problems_of: Callable[[Path, list[str], bool], list[str]] | None = None,
    ) -> None:
        self.rehearsal = rehearsal
        self.runner_args = list(runner_args)
        self.validate = validate  # the contract problems of the exchanges since the last call
        self.problems_of = problems_of or (lambda folder, ids, quiet: [])  # a run folder's problems
        self.results: list[OpResult] = []
        self.seen: dict[str, Any] = {}
        self.count = 0

    # ---------------------------------------------------------------- the runner and the CLI

    def operation(self, op: str, params: dict[str, str] | None = None, quiet: bool = False) -> OpResult:
        self.count += 1
        folder = self.rehearsal.runs_dir / f"ops-{self.count:02d}-{op}"
        pairs = [x for k, v in (params or {}).items() for x in ("-p", k, v)]
        cmd = [sys.executable, "-m", "helpers.runner.cli", "run", "operations", "--only", op, *pairs]
        cmd += ["--output-dir", str(folder), *self.runner_args]
        print(f"\n=== operation {op}: runbook {' '.join(cmd[3:])}", flush=True)
        began = time.monotonic()
        proc = subprocess.run(cmd, env=self.rehearsal.env, cwd=PROJECT_ROOT)
        result = OpResult(op, folder, round(time.monotonic() - began, 1))
        result.problems = self.problems_of(folder, [op], quiet)
        if proc.returncode and not result.problems:
            result.problems = [f"`runbook run operations --only {op}` exited {proc.returncode}"]
        self.results.append(result)
        return result

    def doctor(self, label: str) -> tuple[int, list[dict[str, Any]]]:
        began = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "helpers.runner.cli", "doctor", "phase2", "--json"],
            env=self.rehearsal.env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            report = []
        self.seen[label] = {"exit": proc.returncode, "report": report}
        self.results.append(OpResult(label, None, round(time.monotonic() - began, 1)))
        return proc.returncode, report

    def check(self, label: str, ok: bool, problem: str) -> None:
        if not ok:
            self.results[-1].problems.append(f"{label}: {problem}")

    # ---------------------------------------------------------------- the APIs, read from outside

    def coolify(self, method: str, path: str) -> Any:
        import httpx

        api = str(_state(self.rehearsal, "phase2").get("coolify", {}).get("api_url", "")).rstrip("/")
        token = self.rehearsal.tokens["COOLIFY_API_TOKEN"]
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        answer = httpx.request(method, f"{api}{path}", headers=headers, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def digitalocean(self, path: str, key: str) -> list[dict[str, Any]]:
        import httpx

        token = self.rehearsal.tokens["DIGITALOCEAN_TOKEN"]
        answer = httpx.get(
            f"{self.rehearsal.digitalocean_url}{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        answer.raise_for_status()
        return list(answer.json().get(key) or [])

    def apps(self) -> dict[str, str]:
        return {
            r: str(v["uuid"]) for r, v in (_state(self.rehearsal, "phase2").get("applications") or {}).items()
        }

    def app_images(self) -> dict[str, str]:
        return {role: running_image(uuid) for role, uuid in self.apps().items()}

    # ---------------------------------------------------------------- a release

    def delivered(self) -> dict[str, dict[str, str]]:
        """Per app: the image it deploys, the digest the registry serves for it, the registry digest of the
        running container's image and that image's id; read from the registry's API and the engine. While a
        deploy replaces an app's container, that app has no running digest and no image id ("")."""
        from helpers.clients import errors, registry

        found: dict[str, dict[str, str]] = {}
        for role, uuid in self.apps().items():
            app = self.coolify("GET", f"/applications/{uuid}")
            name, tag = str(app["docker_registry_image_name"]), str(app["docker_registry_image_tag"])
            ref = f"{name}@sha256:{tag[7:]}" if tag.startswith("sha256-") else f"{name}:{tag}"
            try:
                pushed = registry.manifest_digest(ref)
            except errors.ApiError as exc:
                pushed = f"({exc})"
            image = running_image(uuid)
            running = next((d.split("@", 1)[1] for d in repo_digests(image) if d.startswith(f"{name}@")), "")
            found[role] = {"image": ref, "registry": pushed, "running": running, "image_id": image}
        return found

    def check_delivered(self, label: str, wanted: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
        """The apps run the images their registry serves (and, with ``wanted``, these digests)."""
        seen = self.delivered()
        for role, entry in seen.items():
            self.check(
                f"{label}: {role} runs the pushed image",
                entry["registry"] == entry["running"] and entry["running"].startswith("sha256:"),
                f"{entry}",
            )
            if wanted is not None:
                self.check(
                    f"{label}: {role} runs the digest just pushed",
                    entry["running"] == wanted.get(role),
                    f"{entry['running']}, not {wanted.get(role)}",
                )
        return seen

    def release(self) -> dict[str, str]:
        """A code change committed and pushed (the workflow builds, pushes and deploys); the digests pushed as
        the deployed tag, by app."""
        from helpers.app import appfiles, appprod

        route = appprod.route_file(appfiles.Tree(self.rehearsal.app_dir), "/api/health")
        changed = self.rehearsal.app_dir / (route or "README.md")
        with changed.open("a", encoding="utf-8") as handle:
            handle.write(f"\n// release {self.rehearsal.id}: a code change, rebuilt and deployed\n")
        runs = self.rehearsal.push(message=f"Release {self.rehearsal.id}: {changed.name}")
        pushed = [image for run in runs for image in (run.get("x_rehearsal") or {}).get("images") or []]
        tag = str(self.coolify("GET", f"/applications/{self.apps()['web']}")["docker_registry_image_tag"])
        digests = {p["app"]: p["digest"] for p in pushed if p["reference"].endswith(f":{tag}")}
        self.seen["release"] = {
            "changed": str(changed.relative_to(self.rehearsal.app_dir)),
            "workflow_runs": [r.get("conclusion") for r in runs],
            "log": [line for run in runs for line in (run.get("x_rehearsal") or {}).get("log") or []],
            "pushed": pushed,
            "digests": digests,
        }
        return digests

    # ---------------------------------------------------------------- the sequence

    def run(self) -> list[OpResult]:
        self.results.append(OpResult("the first push's images run (registry and engine)", None, 0.0))
        self.seen["first_push"] = self.check_delivered("first push")
        code, report = self.doctor("doctor phase2 (healthy)")
        self.check("doctor", code == 0, f"exit {code}, first cause {_first(report)}")

        self.operation("backup", {"backup_now": "true", "fresh_hours": "1"})
        result = self.operation("restore-drill")
        drill = _state(self.rehearsal, "operations").get("restore_drill") or {}
        self.seen["restore_drill"] = drill
        self.check("restore drill", bool(drill.get("tables")) and drill.get("differing") == [], f"{drill}")
        if result.problems:
            return self.results

        before = self.app_images()
        self.seen["release_before"] = before
        began = time.monotonic()
        self.results.append(OpResult("release (a code change pushed, built, deployed)", None, 0.0))
        digests = self.release()
        self.check("release pushed", set(digests) == set(ROLES), f"pushed {self.seen['release']['pushed']}")
        deployed = _wait(
            "the apps to run the new images",
            lambda: {r: self.delivered()[r]["running"] for r in ROLES} == digests,
            timeout=600,
        )
        self.results[-1].seconds = round(time.monotonic() - began, 1)
        self.check("release deployed", deployed, f"the apps run {self.delivered()}, not {digests}")
        self.seen["release"]["delivered"] = self.check_delivered("release", digests)
        wanted = self.app_images()
        self.seen["release"]["images"] = wanted
        self.check("release changed the images", all(wanted[r] != before[r] for r in ROLES), f"{wanted}")

        self.operation("rollback")
        self.seen["after_rollback"] = self.app_images()
        self.check(
            "rollback", self.seen["after_rollback"] == before, f"they run {self.seen['after_rollback']}"
        )
        self.operation("rollback", {"target": "forward"})
        self.seen["after_forward"] = self.app_images()
        self.check(
            "roll forward", self.seen["after_forward"] == wanted, f"they run {self.seen['after_forward']}"
        )

        self.operation("monitoring", {"restart_drill": "true"})
        self.operation("monitoring", quiet=True)  # the second run changes nothing
        self.operation("logs", {"lines": "40"})

        web = self.apps()["web"]
        self.coolify("POST", f"/applications/{web}/stop")
        code, report = self.doctor("doctor phase2 (web app stopped)")
        cause = _first(report) or {}
        self.check(
            "doctor on a stopped app",
            code == 1 and cause.get("layer") == "apps" and "web application" in str(cause.get("cause")),
            f"exit {code}, first cause {cause}",
        )
        self.coolify("POST", f"/applications/{web}/start")
        back = _wait(
            "web to be healthy again",
            lambda: self.coolify("GET", f"/applications/{web}").get("status") == "running:healthy",
        )
        self.check("web started again", back, "the web app did not come back")

        self.contracts("contracts of the operations' exchanges (before the teardown)")
        name = self.rehearsal.name
        self.operation("teardown")  # a dry run: nothing may go
        still = self.digitalocean(f"/v2/droplets?tag_name={name}", "droplets")
        self.check("teardown dry run", bool(still), "the droplet is gone after a dry run")
        params = {"dry_run": "false", "confirm": name, "remove_ssh_key": "true", "clean_github": "true"}
        self.operation("teardown", params)
        left = self.leftovers()
        self.seen["after_teardown"] = left
        self.check("nothing left", not any(left.values()), f"{left}")
        self.contracts("contracts of the teardown's exchanges")
        return self.results

    def contracts(self, label: str) -> None:
        if self.validate is not None:
            self.results.append(OpResult(label, None, 0.0, self.validate()))

    def leftovers(self) -> dict[str, list[str]]:
        """What the DigitalOcean stand-in and the engine still hold of this rehearsal's production."""
        name = self.rehearsal.name
        do = self.digitalocean
        containers = [
            *_docker("ps", "-aq", "--filter", f"label=runbook.droplet.name={name}").stdout.split(),
            *_docker("ps", "-aq", "--filter", f"label=runbook.coolify.resource={name}").stdout.split(),
        ]
        return {
            "droplets": [d["name"] for d in do("/v2/droplets", "droplets") if d["name"] == name],
            "firewalls": [f["name"] for f in do("/v2/firewalls", "firewalls") if name in f.get("tags", [])],
            "uptime_checks": [
                c["name"] for c in do("/v2/uptime/checks", "checks") if c["name"].startswith(name)
            ],
            "alert_policies": [
                p["description"]
                for p in do("/v2/monitoring/alerts", "policies")
                if p["description"].startswith(name)
            ],
            "ssh_keys": [
                k["name"] for k in do("/v2/account/keys", "ssh_keys")
            ],  # the stand-in holds only ours
            "tags": [t["name"] for t in do("/v2/tags", "tags") if t["name"] == name],
            "containers": containers,
        }

    def write(self) -> Path:
        path = self.rehearsal.runs_dir / "operations.json"
        results = [
            {"label": r.label, "folder": str(r.folder or ""), "seconds": r.seconds, "problems": r.problems}
            for r in self.results
        ]
        path.write_text(json.dumps({"results": results, "seen": self.seen}, indent=2), encoding="utf-8")
        return path


def _first(report: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((d.get("first_cause") for d in report if d.get("first_cause")), None)
