"""A seeded fault run of phase 2 (issue 12): vendor faults and a cut SSH session, resumed, nothing duplicated.

``python -m helpers.rehearse phase2 --runs 1 --faults 7`` as CI runs it: the stand-ins answer with 429s,
500s, 503s, slow answers and lost responses at points seed 7 draws, one SSH session is cut mid-command, and
every task that fails of it is resumed. Read from what the command leaves (its ledgers, ``faults.json``
with the count it read through the vendors' APIs after the run): every task passed, faults of each kind
were injected and resumed, the droplet's create lost its answer and still exactly one droplet exists, and
no resource is duplicated. The run has a wall-time budget: past it the command is stopped like Ctrl-C (it
tears down) and the test fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.app import workflow
from helpers.core.paths import PROJECT_ROOT

SEED = 7
WALL_TIME = 1500  # seconds: a normal run of phase 2 takes about 4 minutes here, this one about 6


def run_within(cmd: list[str], env: dict[str, str], seconds: float) -> tuple[int, str]:
    """Run ``cmd``; past ``seconds`` stop it as Ctrl-C would (the rehearsal tears down), then fail."""
    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
        pytest.fail(f"the fault run took more than its budget of {seconds:.0f} s:\n{output[-4000:]}")
    return proc.returncode, output


@pytest.mark.engine
def test_a_seeded_fault_run_completes_on_resume_with_nothing_duplicated(
    tmp_path: Path, droplet_image: None
) -> None:
    workdir = tmp_path / "faults"
    env = {k: v for k, v in os.environ.items() if k not in ("DIGITALOCEAN_API_URL", "GITHUB_API_URL")}
    command = [
        "phase2",
        "--runs",
        "1",
        "--faults",
        str(SEED),
        "--no-operations",
        "--keep",
        "--workdir",
        str(workdir),
    ]
    code, output = run_within([sys.executable, "-m", "helpers.rehearse", *command], env, WALL_TIME)
    assert code == 0, output[-6000:]

    # every task passed, in the run folders' own ledgers (2.18 in its own, after the simulated push)
    status: dict[str, str] = {}
    for folder in sorted((workdir / "runs").glob("run-1*")):
        ledger = json.loads((folder / "ledger.json").read_text(encoding="utf-8"))
        status.update({t["id"]: t["status"] for t in ledger["tasks"] if t["selected"]})
    assert status and set(status.values()) == {"passed"}, status

    record = json.loads((workdir / "runs" / "faults.json").read_text(encoding="utf-8"))
    injected = record["injected"]
    assert record["seed"] == SEED and sum(injected.values()) <= record["budget"]
    # faults of each kind met the run; the writes' faults failed tasks, and resuming finished them
    assert injected.get("lost_response", 0) >= 2 and injected.get("ssh_drop") == 1, injected
    assert (
        injected.get("rate_limited", 0) + injected.get("server_error", 0) + injected.get("unavailable", 0)
        >= 2
    )
    assert len(record["resumes"]) >= 2 and record["retries"] >= 1, record
    assert any(line.startswith("ssh_drop: cut the SSH session") for line in record["ssh"])
    # seed 7 loses the answer to the droplet's create: the droplet exists once all the same
    assert "digitalocean POST /v2/droplets -> 202" in record["lost_responses"]

    # what exists at the vendors, read through their APIs after the run: nothing twice
    found = record["inventory"]
    for kind in ("droplet", "firewall", "ssh key", "project"):
        assert list(found[kind].values()) == [1], (kind, found[kind])
    for kind, expected in (("database", 2), ("application", 2)):  # PostgreSQL and Redis; web and worker
        assert len(found[kind]) == expected and set(found[kind].values()) == {1}, (kind, found[kind])
    assert found["repository secret"] == dict.fromkeys(
        workflow.DEPLOY_SECRETS, 1
    )  # what the deploy job reads
    assert found["environment variable"] and set(found["environment variable"].values()) == {1}
    assert record["duplicates"] == []

    # the figures are printed at the end of the run
    figures = re.search(r"faults \(seed 7, budget (\d+) per run\): (\d+) injected", output)
    assert figures and int(figures.group(2)) == sum(injected.values()), output[-3000:]
    assert f"  resumes: {len(record['resumes'])}" in output and "  duplicates: 0" in output
