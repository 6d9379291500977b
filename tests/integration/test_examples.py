"""Every command the documentation shows runs, and does what its text says.

The examples are read where a reader sees them (``tests/docexamples.py``: the ``examples:`` of
``runbook --help`` and of every subcommand, the shell blocks of README.md and helpers/runner/README.md),
never copied here. Each runs through ``bash -c`` as written, in a world of its own:

* ``HOME`` is a temporary folder whose ``~/src/demo-app`` is a disposable copy of the sample app
  (:class:`helpers.runner.sampleapp.Sandbox`: its own compose project, free ports); phase 1 has really
  run on it up to 1.14 once, so a dry run has something true to say;
* every example has its own working folder (``.venv`` and ``notebooks`` linked to the project's,
  ``runs/`` as ``RUNBOOK_RUNS_DIR``); no developer's secret or ``RUNBOOK_*`` variable reaches it;
* DigitalOcean is the local stand-in with a throwaway token (``DIGITALOCEAN_API_URL``).

What would change things runs in its plan or dry-run form: ``runbook run`` with ``--dry-run``, ``make``
targets with ``make -n`` (make's own dry run: the recipe is printed, not run), ``runbook lab`` on a free
port and stopped once it answered, ``runbook rehearse`` through the rehearsal's own option parsing and
task selection (the rehearsal itself runs in test_rehearse_phase2.py), ``mkdocs serve`` through the
configuration that gives its address (the site build runs in test_docs_build.py). The few substitutions
are said where they are made (a free port, the run folder's real name, ``/tmp/`` → the example's folder).
An example no handler knows fails: teach this file how to run it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from docexamples import Example, all_examples, help_block, help_texts
from testsupport import free_port

from helpers.core import secrets as runbook_secrets
from helpers.core.paths import PROJECT_ROOT
from helpers.runner import catalog as C
from helpers.runner import cli, sampleapp
from helpers.runner.params import declared_parameters
from helpers.runner.plan import Selection, make_plan

BIN = Path(sys.executable).parent
VENV = PROJECT_ROOT / ".venv" if (PROJECT_ROOT / ".venv" / "bin").is_dir() else Path(sys.prefix)
ENGINE_FREE = {("runbook", "list"), ("runbook", "lab"), ("runbook", "rehearse"), ("make", ""), ("mkdocs", "")}
ENGINE_FREE |= {("export", "")}
VENDOR_URLS = ("DIGITALOCEAN_API_URL", "GITHUB_API_URL", "COOLIFY_API_URL", "COOLIFY_URL")


# --- the world the examples run in ------------------------------------------------------------------


@dataclass
class World:
    tmp: Path
    home: Path
    env: dict[str, str]
    box: sampleapp.Sandbox | None = None
    standin: Any = None
    token: str = ""
    count: int = 0
    folders: list[Path] = field(default_factory=list)

    def folder(self) -> Path:
        """A folder for one example: ``.venv`` and ``notebooks`` as in a checkout, its own ``runs/``."""
        self.count += 1
        path = self.tmp / f"example-{self.count}"
        path.mkdir()
        (path / ".venv").symlink_to(VENV)
        (path / "notebooks").symlink_to(PROJECT_ROOT / "notebooks")
        return path

    def run(
        self, command: str, cwd: Path, timeout: float = 600, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "RUNBOOK_RUNS_DIR": str(cwd / "runs"), **extra}
        return subprocess.run(
            ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )

    def expand(self, value: str) -> str:
        """What the reader's shell makes of ``~/...`` with this world's HOME."""
        return str(self.home) + value[1:] if value.startswith("~/") else value

    def app_state(self) -> dict[str, str]:
        """The app copy as seen from outside: every file's digest, git's HEAD and status."""
        assert self.box is not None
        app = self.box.app_dir
        state = {
            str(p.relative_to(app)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(app.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(app).parts
        }
        for args in (["rev-parse", "HEAD"], ["status", "--porcelain"]):
            state["git " + args[0]] = subprocess.run(
                ["git", *args], cwd=app, capture_output=True, text=True, check=True
            ).stdout
        return state

    def vendor_changes(self) -> list[str]:
        """Requests that would change something at the DigitalOcean stand-in (anything but GET)."""
        if self.standin is None:
            return []
        with self.standin.control() as control:
            requests = control.get("/requests").json()["requests"]
        return [f"{r['method']} {r['path']}" for r in requests if r["method"] != "GET"]


def base_environment(home: Path, tmp: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RUNBOOK_") and k not in runbook_secrets.SECRETS and k not in VENDOR_URLS
    }
    env.update(
        HOME=str(home),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        COLUMNS="200",
        RUNBOOK_SECRETS_FILE=str(tmp / "secrets.env"),
        JUPYTER_CONFIG_DIR=str(tmp / "jupyter" / "config"),
        JUPYTER_DATA_DIR=str(tmp / "jupyter" / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "jupyter" / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "jupyter" / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "jupyter" / "workspaces"),
    )
    return env


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> World:
    """HOME, environment and folders, without the app or services (for examples that need neither)."""
    tmp = tmp_path_factory.mktemp("examples-base")
    home = tmp / "home"
    (home / "src").mkdir(parents=True)
    return World(tmp, home, base_environment(home, tmp))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The app copy at ``~/src/demo-app`` after a real phase 1 up to 1.14, and the DigitalOcean stand-in."""
    from helpers.rehearse.base import StandInProcess

    tmp = tmp_path_factory.mktemp("examples")
    home = tmp / "home"
    (home / "src").mkdir(parents=True)
    box = sampleapp.Sandbox.create(f"rb-examples-{uuid.uuid4().hex[:8]}")
    standin = None
    try:
        (home / "src" / "demo-app").symlink_to(box.app_dir)
        token = "dop_v1_" + secrets.token_hex(32)
        standin = StandInProcess(
            "helpers.rehearse.digitalocean", env={"DIGITALOCEAN_TOKEN": token}, cwd=PROJECT_ROOT
        ).start()
        env = base_environment(home, tmp)
        env.update(box.env)
        env.pop("RUNBOOK_ALLOW_COMMIT", None)  # the examples say `-p commit true` themselves
        env.update(
            DIGITALOCEAN_API_URL=standin.url,
            DIGITALOCEAN_TOKEN=token,
            RUNBOOK_DROPLET_NAME=f"rb-examples-{secrets.token_hex(3)}",
            RUNBOOK_SSH_DIR=str(home / ".ssh"),
        )
        env["RUNBOOK_DROPLET_TAG"] = env["RUNBOOK_DROPLET_NAME"]
        here = World(tmp, home, env, box, standin, token)
        proc = here.run("runbook run phase1 --to 1.14 -p commit true", here.folder())
        assert proc.returncode == 0, "phase 1 did not pass on the copy:\n" + proc.stdout[-4000:] + proc.stderr
        yield here
    finally:
        if standin is not None:
            standin.stop()
        problems = box.teardown()
        assert not problems, problems


# --- reading what a run did --------------------------------------------------------------------------


def output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n{proc.stdout[-5000:]}\n{proc.stderr[-3000:]}"


def run_folder(cwd: Path, plan: bool = False) -> Path:
    folders = [p for p in (cwd / "runs").iterdir() if p.is_dir() and p.name.endswith("-plan") == plan]
    assert len(folders) == 1, folders
    return folders[0]


def ledger_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "ledger.json").read_text(encoding="utf-8"))


def option(words: list[str], name: str) -> list[str]:
    """The values after ``name`` (``--only`` takes every word up to the next option)."""
    if name not in words:
        return []
    values = []
    for word in words[words.index(name) + 1 :]:
        if word.startswith("-"):
            break
        values.append(word)
        if name != "--only":
            break
    return values


def pairs(words: list[str]) -> list[tuple[str, str]]:
    return [(words[i + 1], words[i + 2]) for i, w in enumerate(words) if w in ("-p", "--parameter")]


def same_value(injected: Any, given: Any) -> bool:
    return str(injected).lower() == str(given).lower()


def check_ledger_follows(world: World, ledger: dict[str, Any], words: list[str], cwd: Path) -> None:
    """The ledger selected what the example's --from/--to/--only select, with the parameters it gives."""
    catalog = C.default()
    phase = ledger["phase"]
    selection = Selection(
        start=next(iter(option(words, "--from")), None),
        stop=next(iter(option(words, "--to")), None),
        only=tuple(option(words, "--only")),
    )
    expected = make_plan(phase, catalog.in_phase(phase), selection).selected
    assert [t["id"] for t in ledger["tasks"] if t["selected"]] == expected
    given: dict[str, dict[str, Any]] = {"*": {n: world.expand(v) for n, v in pairs(words)}}
    file = next(iter(option(words, "-f") or option(words, "--parameters-file")), None)
    if file:
        data = yaml.safe_load((cwd / file).read_text(encoding="utf-8"))
        given["*"] = {**data.get("shared", {}), **given["*"]}
        given.update({str(k): v for k, v in data.get("tasks", {}).items()})
    checked = 0
    for task in ledger["tasks"]:
        if not task["selected"]:
            continue
        declared = declared_parameters(PROJECT_ROOT / task["notebook"])
        for name, value in {**given["*"], **given.get(task["id"], {})}.items():
            if name in declared:
                assert same_value(task["parameters"].get(name), value), (task["id"], name, task["parameters"])
                checked += 1
    assert checked or not (given["*"] or len(given) > 1), "no selected task received the example's parameters"


# --- one handler per kind of example ----------------------------------------------------------------


def run_list(world: World, example: Example) -> None:
    cwd = world.folder()
    proc = world.run(example.command, cwd)
    assert proc.returncode == 0, output(proc)
    catalog = C.default()
    phases = [w for w in example.words[2:] if not w.startswith("-")] or list(catalog.phases)
    text = " ".join(proc.stdout.split())
    for phase in phases:
        assert catalog.phases[phase].title in text
        for task in catalog.in_phase(phase):
            assert f" {task.id} " in text
            if "--params" in example.words:
                for name in declared_parameters(catalog.notebook(task)):
                    assert f" {name} = " in text, (task.id, name)


def run_plan(world: World, example: Example) -> None:
    cwd = world.folder()
    before = world.app_state()
    proc = world.run(example.command, cwd)
    assert proc.returncode == 0, output(proc)
    ledger = ledger_of(run_folder(cwd, plan=True))
    assert ledger["mode"] == "plan" and ledger["dry_run"] is True
    assert world.app_state() == before, "a plan changed the app"
    assert world.vendor_changes() == []
    check_ledger_follows(world, ledger, example.words, cwd)


def run_run(world: World, example: Example) -> None:
    cwd = world.folder()
    command = example.command if "--dry-run" in example.words else f"{example.command} --dry-run"
    if "-f" in example.words:  # the file the run help shows under "params.yaml (for -f):"
        text = help_texts()["runbook run --help"]
        (cwd / option(example.words, "-f")[0]).write_text(help_block(text, "params.yaml (for -f):"))
    before = world.app_state()
    proc = world.run(command, cwd)
    assert proc.returncode == 0, output(proc)
    ledger = ledger_of(run_folder(cwd))
    assert ledger["dry_run"] is True and ledger["status"] == "passed"
    assert world.app_state() == before, "a dry run changed the app"
    assert world.vendor_changes() == []
    if option(example.words, "--jobs"):
        assert ledger["options"]["jobs"] == int(option(example.words, "--jobs")[0])
    check_ledger_follows(world, ledger, example.words, cwd)


def run_resume(world: World, example: Example) -> None:
    """A run that fails because the app is not where its parameter says, the fix, then the example."""
    cwd = world.folder()
    later = world.home / "src" / f"not-yet-{world.count}"
    first = world.run(f"runbook run phase1 --dry-run --from 1.7 --to 1.8 -p app_dir {later}", cwd)
    assert first.returncode == 1, output(first)
    folder = run_folder(cwd)
    assert {t["id"]: t["status"] for t in ledger_of(folder)["tasks"]}["1.7"] == "failed"
    command = example.command
    for word in example.words[2:]:
        if not word.startswith("-") and "/" in word and word not in (v for _, v in pairs(example.words)):
            # the example's folder name stands for this run's: same shape, digits aside
            shape = re.sub(r"\d", "0", word)
            real = folder.relative_to(cwd).as_posix()
            assert re.sub(r"\d", "0", real) == shape, (word, real)
            command = command.replace(word, real)
    if not pairs(example.words):
        later.symlink_to(world.box.app_dir)  # the fix outside the parameters
    proc = world.run(command, cwd)
    assert proc.returncode == 0, output(proc)
    ledger = ledger_of(folder)
    assert ledger["status"] == "passed" and [a["status"] for a in ledger["attempts"]] == ["failed", "passed"]
    for name, value in pairs(example.words):
        for task in ledger["tasks"]:
            if task["selected"] and name in declared_parameters(PROJECT_ROOT / task["notebook"]):
                assert same_value(task["parameters"][name], world.expand(value)), task


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError:  # not listening yet
        return 0, b""


def run_lab(world: World, example: Example) -> None:
    """On a free port (``--port N`` replaced or added), with a token unless the example clears it."""
    cwd = world.folder()
    port = free_port()
    words = example.words
    if "--port" in words:
        words[words.index("--port") + 1] = str(port)
    else:
        words[2:2] = ["--port", str(port)]
    recorder = cwd / "browser.sh"  # stands in for the web browser JupyterLab opens
    recorder.write_text(f'#!/bin/sh\necho "$@" >> {cwd / "browser.log"}\n')
    recorder.chmod(0o755)
    token = secrets.token_hex(12)
    env = {**world.env, "JUPYTER_TOKEN": token, "BROWSER": str(recorder)}
    lab = subprocess.Popen(
        ["bash", "-c", shlex.join(words)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while _get(f"{base}/api/status?token={token}")[0] != 200 and _get(f"{base}/api/status")[0] != 200:
            assert lab.poll() is None and time.monotonic() < deadline, "JupyterLab did not answer"
            time.sleep(0.5)
        no_token = "--ServerApp.token=" in words
        assert _get(f"{base}/api/contents/phase1")[0] == (200 if no_token else 403)
        status, body = _get(f"{base}/api/contents/phase1?token={token}")
        assert status == 200 and "1.03-verify-docker.ipynb" in {
            i["name"] for i in json.loads(body)["content"]
        }
        status, body = _get(
            f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification?token={token}"
        )
        assert json.loads(body)["schema"]["properties"]["fetchNews"]["default"] == "false"  # no news prompt
        if "--no-browser" not in words:
            while not (cwd / "browser.log").exists():
                assert time.monotonic() < deadline, "JupyterLab did not open the browser"
                time.sleep(0.2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.communicate()
    if "--no-browser" in words:
        assert not (cwd / "browser.log").exists(), "--no-browser opened a browser"


def run_rehearse(world: World, example: Example) -> None:
    """Parsed and selected by the rehearsal itself; the rehearsal runs in test_rehearse_phase2.py."""
    from helpers.rehearse.__main__ import select

    args = cli.build_parser().parse_args(example.words[1:])
    _, selected = select(args)
    assert args.runs >= 1 and selected
    span = re.search(r"\((\d+\.\d+) to (\d+\.\d+)\)", example.comment)
    if span:
        assert (selected[0], selected[-1]) == span.groups(), selected


def run_make(world: World, example: Example) -> None:
    """``make -n``: the recipe as it would run; what it calls exists, and the example's variables reach it."""
    proc = world.run(example.command.replace("make ", "make -n ", 1), PROJECT_ROOT)
    assert proc.returncode == 0, output(proc)
    recipe = proc.stdout
    for word in example.words[1:]:
        name, sep, value = word.partition("=")
        if sep:
            expected = str(Path(world.expand(value)).absolute()) if name == "APP_DIR" else value
            assert expected in recipe, (word, recipe)
    for script in re.findall(r"(?<![\w/.])(scripts/[\w./-]+)", recipe):
        assert (PROJECT_ROOT / script).is_file(), script
    for module in re.findall(r"-m ([\w.]+)", recipe):
        assert importlib.util.find_spec(module) is not None, module
    if "rehearse" in example.subcommand:
        args = re.search(r"-m helpers\.rehearse phase2 ?(.*)", recipe)
        assert args, recipe
        run_rehearse(world, Example("runbook rehearse " + args.group(1).strip(), example.comment))


def run_papermill(world: World, example: Example) -> None:
    words = example.words
    if "--help-notebook" in words:
        proc = world.run(example.command, world.folder())
        assert proc.returncode == 0, output(proc)
        notebook = PROJECT_ROOT / words[words.index("--help-notebook") + 1]
        for name in declared_parameters(notebook):
            assert re.search(rf"^\s+{name}: ", proc.stdout, re.M), (name, proc.stdout)
        return
    cwd = world.folder()
    command = example.command
    for word in words:
        if word.startswith("/tmp/"):
            command = command.replace(word, str(cwd / Path(word).name))
    before = world.app_state()
    proc = world.run(command, cwd)
    assert proc.returncode == 0, output(proc)
    executed = json.loads(next(cwd.glob("*.ipynb")).read_text(encoding="utf-8"))
    assert executed["metadata"]["papermill"]["exception"] is None
    injected = next(c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    for name, value in pairs(words):
        assert re.search(rf"^{name} = .*{re.escape(world.expand(value))}", "".join(injected["source"]), re.M)
    if ("dry_run", "True") in pairs(words):
        assert world.app_state() == before, "a dry run changed the app"


def run_mkdocs(world: World, example: Example) -> None:
    """The address the comment gives is the one ``mkdocs serve`` uses (the build: test_docs_build.py)."""
    from mkdocs.config import load_config

    assert example.subcommand == "serve" and (BIN / "mkdocs").is_file()
    config = load_config(str(PROJECT_ROOT / "mkdocs.yml"))
    host, port = config.dev_addr.host, config.dev_addr.port
    assert f"http://{host}:{port}" in example.comment, (example.comment, host, port)


def run_export(world: World, example: Example) -> None:
    """A secret the runbook reads, refused on the runner's command line, as the comment says."""
    name = example.words[1].split("=")[0]
    assert name in runbook_secrets.SECRETS
    proc = world.run(f"runbook run phase2 --to 2.2 -p {name} x", world.folder())
    assert proc.returncode == 2 and "looks like a secret" in proc.stdout, output(proc)


def run_doctor(world: World, example: Example) -> None:
    """Read-only, and its exit code is what its findings say: 0 nothing wrong, 1 a first cause printed
    last (``--json``: the findings as JSON). Substitutions: the team's folder in the example
    (``~/src/implementation-2``) is this world's app, and the JSON is read here instead of through ``jq``."""
    command = example.command.split(" | ")[0].replace("~/src/implementation-2", "~/src/demo-app")
    before = world.app_state()
    proc = world.run(command, world.folder())
    assert proc.returncode in (0, 1), output(proc)
    assert world.app_state() == before, "the doctor changed the app"
    assert world.vendor_changes() == []
    scope = next((w for w in example.words[2:] if w in ("phase1", "phase2", "all")), "all")
    scopes = {"all": {"phase1", "phase2"}}.get(scope, {scope})
    if "--json" in example.words:
        found = json.loads(proc.stdout)
        assert {d["scope"] for d in found} <= scopes and found, found
        assert (proc.returncode == 0) == all(d["ok"] for d in found)
        for d in found:
            assert d["ok"] or (d["first_cause"] and d["first_cause"]["fix"]), d
        return
    shown = set(re.findall(r"runbook doctor (phase[12])", proc.stdout))
    assert shown and shown <= scopes, (shown, proc.stdout)
    if proc.returncode == 1:
        assert "first cause:" in proc.stdout.rsplit("runbook doctor", 1)[-1], output(proc)
    else:
        assert "nothing is wrong" in proc.stdout or "could not run" in proc.stdout, output(proc)


# What an operation that needs production says in this world, which has none (no Coolify, no droplet).
NO_PRODUCTION = {"MissingSecret": "is not set", "VerificationFailed": "checks failed"}


def run_operations(world: World, example: Example) -> None:
    """The operations act on a production this world has none of (the rehearsal runs each of them for real
    after 2.18: test_rehearse_phase2.py). Here the example goes through the runner as a dry run, with its
    selection and parameters, and changes nothing; an operation that cannot run without production stops
    at its first missing prerequisite and names it, and only then is the exit code 1."""
    plan = example.subcommand == "plan"
    cwd = world.folder()
    command = example.command if plan or "--dry-run" in example.words else f"{example.command} --dry-run"
    before = world.app_state()
    proc = world.run(command, cwd)
    assert proc.returncode in (0, 1), output(proc)
    ledger = ledger_of(run_folder(cwd, plan=plan))
    assert ledger["phase"] == "operations" and ledger["dry_run"] is True
    assert world.app_state() == before, "an operation's dry run changed the app"
    assert world.vendor_changes() == []
    check_ledger_follows(world, ledger, example.words, cwd)
    failed = [t for t in ledger["tasks"] if t["selected"] and t["status"] == "failed"]
    assert (proc.returncode == 1) == bool(failed), output(proc)
    for task in failed:
        error = task["error"] or {}
        assert NO_PRODUCTION.get(error.get("ename"), "\0") in error.get("evalue", ""), (task["id"], error)


HANDLERS: dict[tuple[str, str], Callable[[World, Example], None]] = {
    ("runbook", "list"): run_list,
    ("runbook", "plan"): run_plan,
    ("runbook", "run"): run_run,
    ("runbook", "resume"): run_resume,
    ("runbook", "lab"): run_lab,
    ("runbook", "rehearse"): run_rehearse,
    ("make", ""): run_make,
    ("papermill", ""): run_papermill,
    ("mkdocs", ""): run_mkdocs,
    ("export", ""): run_export,
    ("runbook", "doctor"): run_doctor,
}


def handler_of(example: Example) -> tuple[tuple[str, str], Callable[[World, Example], None]]:
    if example.subcommand in ("plan", "run") and "operations" in example.words[2:3]:
        return (example.program, "operations"), run_operations
    for key in ((example.program, example.subcommand), (example.program, "")):
        if key in HANDLERS:
            return key, HANDLERS[key]
    raise LookupError(f"no way to run {example} ({', '.join(example.sources)}): teach {__file__} how")


def needs_engine(example: Example) -> bool:
    key, _ = handler_of(example)
    return key not in ENGINE_FREE and not (key[0] == "papermill" and "--help-notebook" in example.words)


def params() -> list[Any]:
    out = []
    for example in all_examples():
        try:
            marks = [pytest.mark.engine] if needs_engine(example) else []
        except LookupError:
            marks = []
        out.append(pytest.param(example, marks=marks, id=example.command[:70]))
    return out


@pytest.mark.parametrize("example", params())
def test_example_runs_as_documented(example: Example, request: pytest.FixtureRequest) -> None:
    _, handler = handler_of(example)
    world = request.getfixturevalue("world" if needs_engine(example) else "base")
    handler(world, example)


def test_readme_programs_are_in_the_venv() -> None:
    """``.venv/bin/X`` in the READMEs: X is a program this project installs (``make install``)."""
    named = {w for e in all_examples() for w in e.command.split() if w.startswith(".venv/bin/")}
    assert named, "the README shows no .venv/bin/ command"
    for word in named:
        assert (BIN / word.removeprefix(".venv/bin/")).is_file(), word


@pytest.mark.engine
def test_the_run_check_fails_on_a_wrong_parameter(world: World) -> None:
    """The example `runbook run --help` showed before: `-p allow_commit true` (the parameter is `commit`)."""
    old = Example("runbook run phase1 -p app_dir ~/src/demo-app -p allow_commit true --jobs 2")
    with pytest.raises(AssertionError, match="exit 2") as failure:
        run_run(world, old)
    assert "unknown parameter 'allow_commit'" in " ".join(str(failure.value).split())


def test_the_make_check_fails_on_a_wrong_target(base: World) -> None:
    with pytest.raises(AssertionError, match="exit 2"):
        run_make(base, Example("make phase-1 APP_DIR=~/src/demo-app"))


@pytest.mark.engine
def test_the_doctor_and_operations_checks_fail_on_a_wrong_scope(world: World) -> None:
    with pytest.raises(AssertionError, match="exit 2"):
        run_doctor(world, Example("runbook doctor phase3"))
    with pytest.raises(AssertionError, match="exit 2"):
        run_operations(world, Example("runbook run operations --only backups"))
