"""No secret value reaches any file of the run folder, even from notebooks that print them on purpose.

The phase below is hostile: with known secret values in the environment, its notebooks print them to
stdout and stderr, display them as Markdown, HTML and repr, log them, echo them from a child process
(bypassing the kernel's capture: that goes to the kernel's own output, then the runner's log), put one
in a connection URL, split one with ANSI colour codes, and fail with one in the exception message and
the traceback. Every file under the run folder is then searched for every value, raw and in its JSON
and HTML-escaped forms.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from helpers.runner.demo import DemoTask, write_phase

ROOT = Path(__file__).resolve().parents[2]

PARAMS = 'import os\nwork_dir = os.environ.get("DEMO_WORK_DIR", "")  # unused'

LEAKY_CELLS = [
    "import os, sys, logging\n"
    "do, coolify = os.environ['DIGITALOCEAN_TOKEN'], os.environ['COOLIFY_API_TOKEN']\n"
    "gh = os.environ['GITHUB_TOKEN']\n"
    "print('stdout:', do, coolify)\n"
    "print('stderr:', gh, file=sys.stderr)\n"
    "logging.getLogger('leaky').warning('log: %s', os.environ['MY_SERVICE_PASSWORD'])",
    "from IPython.display import display, Markdown, HTML\n"
    "display(Markdown(f\"token **{os.environ['COOLIFY_API_TOKEN']}**\"))\n"
    "display(HTML(f\"<b>{os.environ['APP_SECRET']}</b>\"))\n"
    "{'repr': os.environ['PROD_POSTGRES_PASSWORD']}",
    "url = f\"postgresql://app:{os.environ['PROD_POSTGRES_PASSWORD']}@localhost:5432/app\"\n"
    "print(url)\n"
    "print('\\x1b[31m' + coolify[:8] + '\\x1b[0m' + coolify[8:])\n"
    "print('unconfigured shape: ghp_' + 'Z' * 36)\n"
    "os.system('echo child process says $DIGITALOCEAN_TOKEN')",
]

FAILING_CELLS = ["import os\nraise RuntimeError('login refused for token ' + os.environ['GITHUB_TOKEN'])"]


def test_no_secret_value_in_any_file_of_the_run_folder(tmp_path: Path) -> None:
    values = {
        "DIGITALOCEAN_TOKEN": "dop_v1_" + secrets.token_hex(32),
        "COOLIFY_API_TOKEN": "1|" + secrets.token_urlsafe(24),
        "GITHUB_TOKEN": "ghp_" + secrets.token_hex(18),
        "PROD_POSTGRES_PASSWORD": 'pw"<&>' + secrets.token_urlsafe(12),  # needs JSON and HTML escaping
        "APP_SECRET": secrets.token_urlsafe(20),
        "MY_SERVICE_PASSWORD": "svc-"
        + secrets.token_hex(8),  # not in helpers.core.secrets: found by its name
    }
    registry = write_phase(
        tmp_path / "demo",
        [
            DemoTask("1.1", "leaky", "automated", [], "Leaky", cells=LEAKY_CELLS, parameters=PARAMS),
            DemoTask("1.2", "failing", "automated", [], "Failing", cells=FAILING_CELLS, parameters=PARAMS),
        ],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_")}
    env.update(
        values,
        RUNBOOK_REGISTRY=str(registry),
        RUNBOOK_RUNS_DIR=str(tmp_path / "runs"),
        RUNBOOK_SECRETS_FILE=str(tmp_path / "no.env"),
        DEMO_WORK_DIR=str(tmp_path / "work"),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "helpers.runner.cli", "run", "phase1", "--keep-going"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # 1.2 fails on purpose
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    ledger = json.loads((run_dir / "ledger.json").read_text())
    assert [t["status"] for t in ledger["tasks"]] == ["passed", "failed"]
    assert "login refused for token [REDACTED]" in ledger["tasks"][1]["error"]["evalue"]

    forms = {}
    for name, value in values.items():
        forms[name] = {value, json.dumps(value)[1:-1], html.escape(value), html.escape(value, quote=False)}
    forms["unconfigured ghp_ shape"] = {"ghp_" + "Z" * 36}
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {
        "1.01-leaky.ipynb",
        "1.02-failing.ipynb",
        "ledger.json",
        "runner.log",
        "summary.md",
        "summary.html",
    }
    for path in files:
        text = path.read_bytes().decode("utf-8", "replace")
        for name, variants in forms.items():
            for variant in variants:
                assert variant not in text, f"{name} found in {path.name}"
    # the outputs were really produced (and scrubbed), not lost
    leaky = (run_dir / "1.01-leaky.ipynb").read_text()
    assert "stdout: [REDACTED] [REDACTED]" in leaky and "postgresql://app:[REDACTED]@localhost" in leaky
    assert "child process says [REDACTED]" in (run_dir / "runner.log").read_text()
    # and the terminal did not show them either
    for variants in forms.values():
        for variant in variants:
            assert variant not in proc.stdout + proc.stderr
