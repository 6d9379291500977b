"""``runbook lab`` starts JupyterLab on the notebooks folder, on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from testsupport import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_lab_serves_the_notebooks(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
    }
    env.pop("RUNBOOK_REGISTRY", None)
    lab = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helpers.runner.cli",
            "lab",
            "--port",
            str(port),
            "--no-browser",
            "--",
            "--ServerApp.token=rb-runner-test",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        listing = None
        while time.monotonic() < deadline and lab.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/api/contents/phase1?token=rb-runner-test"
                with urllib.request.urlopen(url, timeout=5) as response:
                    listing = json.load(response)
                break
            except OSError:
                time.sleep(0.5)
        assert listing is not None, (
            lab.stdout.read() if lab.poll() is not None else "JupyterLab did not answer"
        )
        names = {item["name"] for item in listing["content"]}
        assert "1.04-start-services.ipynb" in names  # the root is notebooks/, so phase1/ is at the top
    finally:
        lab.send_signal(signal.SIGTERM)
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lab.kill()
