"""The root conftest's nbval harness, run as the README runs it, with a task that fails on purpose.

With a PostgreSQL image that does not exist, 1.4 must fail; the rest of 1.4 and every task that needs
it (1.5, 1.14, 1.15) must be skipped with the reason; the independent tasks still pass; and at the end
nothing of the run is left: no container or volume of its compose project, no app process, no temp
folder, and the developer's own RUNBOOK_APP_DIR untouched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.core.paths import PROJECT_ROOT

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def leftovers(project: str) -> list[str]:
    """Containers and volumes of the compose project (by compose's label)."""
    label = f"label=com.docker.compose.project={project}"
    found = []
    for args in (["ps", "-a", "--format", "{{.Names}}"], ["volume", "ls", "--format", "{{.Name}}"]):
        proc = subprocess.run(
            ["docker", *args, "--filter", label], capture_output=True, text=True, check=True
        )
        found += proc.stdout.split()
    return found


def test_a_failing_task_skips_its_dependents_and_the_run_cleans_up(tmp_path: Path) -> None:
    mine = tmp_path / "my-real-app"
    mine.mkdir()
    env = {
        **os.environ,
        "POSTGRES_IMAGE": "rb-e2e-no-such-image:1",
        "RUNBOOK_APP_DIR": str(mine),  # a developer's own setting: must not be used or touched
        "TMPDIR": str(tmp_path),
    }
    env.pop("RUNBOOK_REQUIRE_ENGINE", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "notebooks/phase1",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rfs",
            "-o",
            "addopts=",
            "-o",
            "testpaths=notebooks/phase1",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = proc.communicate(timeout=900)
    project = f"rb-nbval-{proc.pid}"
    assert proc.returncode == 1, out[-3000:]
    failed = set(re.findall(r"FAILED notebooks/phase1/(\S+?)\.ipynb", out))
    assert failed == {"1.04-start-services"}, out[-3000:]
    for task in ("1.5", "1.14", "1.15"):
        assert re.search(rf"task {re.escape(task)} needs 1\.04-start-services\.ipynb, which failed", out), (
            task
        )
    assert "an earlier cell of 1.04-start-services.ipynb failed" in out
    passed = int(re.search(r"(\d+) passed", out).group(1))
    assert passed > 40  # 1.1-1.3 and 1.6-1.13 ran
    assert leftovers(project) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("rb-nbval-", "rb-kernel-"))]
    assert list(mine.iterdir()) == []


def test_nbval_kernels_listen_on_unix_sockets_of_their_own(tmp_path: Path) -> None:
    """As the runner's kernels (test_runner_engine): no TCP port another worker could take first, and the
    socket folder gone with the kernel."""
    import nbformat

    check = (
        "from ipykernel.connect import get_connection_info\n"
        "info = get_connection_info(unpack=True)\n"
        "assert info['transport'] == 'ipc', info['transport']\n"
        "print(info['ip'])"
    )
    notebook = tmp_path / "sockets.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(check)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebook)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "--nbval-lax", str(notebook), "-p", "no:cacheprovider", "-q"),
            # the root conftest.py by name: pytest loads conftest files only beside and above the tests
            *("-o", "addopts=", "-p", "no:xdist", "-p", "conftest"),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("rb-nbval-", "rb-kernel-"))]
