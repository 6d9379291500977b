"""The warm-kernel papermill engine: isolation between notebooks, and failures still reported per cell.

These tests are the reason ``runbook`` (one kernel, reused) is the runner's default engine: nothing a
notebook defines, sets or imports from the project leaks into the next one, and a failure names its
cell exactly as papermill's default engine does.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from helpers.runner.engine import KernelSession

sys.modules.setdefault("rfc3987_syntax", None)  # as the CLI does (see helpers/runner/cli.py)


def notebook(path: Path, *cells: str, params: str | None = None, metadata: dict | None = None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.metadata.update(metadata or {})
    if params is not None:
        cell = nbformat.v4.new_code_cell(params)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def session():
    s = KernelSession()
    yield s
    s.shutdown(now=True)


def run(path: Path, out: Path, session: KernelSession, engine: str = "runbook", **params):
    return papermill.execute_notebook(
        str(path),
        str(out),
        parameters=params,
        engine_name=engine,
        progress_bar=False,
        session=session,
        kernel_env={"RB_TEST": "1"},
    )


def outputs(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


LEAKER = """
import os, sys, warnings, logging, socket
import localmod  # beside the notebook, imported from the working directory
secret_variable = 41
os.environ["LEAKED_VAR"] = "yes"
os.environ.pop("HOME", None)
os.chdir("/")
sys.path.insert(0, "/leaked/path")
warnings.simplefilter("error")
logging.getLogger().addHandler(logging.NullHandler())
socket.setdefaulttimeout(3)
localmod.STATE.append("from A")
print("A ran", localmod.STATE)
"""

CHECKER = """
import os, sys, warnings, logging, socket
problems = []
if "secret_variable" in globals(): problems.append("variable leaked")
if "LEAKED_VAR" in os.environ: problems.append("environment leaked")
if "HOME" not in os.environ: problems.append("removed variable not restored")
if os.getcwd() != here: problems.append(f"cwd is {os.getcwd()}")
if "/leaked/path" in sys.path: problems.append("sys.path leaked")
if any(f[0] == "error" and f[2] is Warning for f in warnings.filters): problems.append("warnings leaked")
if any(type(h).__name__ == "NullHandler" for h in logging.getLogger().handlers):
    problems.append("log handler leaked")
if socket.getdefaulttimeout() is not None: problems.append("socket timeout leaked")
import localmod
if localmod.STATE: problems.append(f"module state leaked: {localmod.STATE}")
if os.environ.get("RB_TEST") != "1": problems.append("per-notebook variable missing")
assert not problems, problems
print("clean", get_ipython().execution_count)
"""


def test_nothing_leaks_from_one_notebook_to_the_next(tmp_path, session) -> None:
    (tmp_path / "localmod.py").write_text("STATE = []\n")
    a = notebook(tmp_path / "a.ipynb", LEAKER)
    b = notebook(tmp_path / "b.ipynb", CHECKER, params=f"here = {str(tmp_path)!r}")
    first = run(a, tmp_path / "out-a.ipynb", session)
    assert "A ran ['from A']" in outputs(first)
    pid = session.pid
    second = run(b, tmp_path / "out-b.ipynb", session, here=str(tmp_path))
    assert "clean" in outputs(second)
    assert session.pid == pid and session.starts == 1  # same kernel: the speed-up is real
    counts = [c.execution_count for c in second.cells if c.cell_type == "code"]
    assert counts == [1, 2, 3]  # In [1] again, as in a fresh kernel


def test_the_checker_does_catch_leaks_without_the_reset(tmp_path, session) -> None:
    """Control experiment: the same two cells in ONE notebook fail, so the test above can fail."""
    (tmp_path / "localmod.py").write_text("STATE = []\n")
    both = notebook(tmp_path / "both.ipynb", LEAKER, f"here = {str(tmp_path)!r}", CHECKER)
    with pytest.raises(PapermillExecutionError) as err:
        run(both, tmp_path / "out.ipynb", session)
    for leak in (
        "variable leaked",
        "environment leaked",
        "cwd is /",
        "sys.path leaked",
        "module state leaked",
    ):
        assert leak in err.value.evalue


def test_a_failure_names_its_cell_and_the_next_notebook_gets_a_new_kernel(tmp_path, session) -> None:
    bad = notebook(
        tmp_path / "bad.ipynb", "x = 1", "raise RuntimeError('step 2 broke: compose up failed')", "x = 3"
    )
    with pytest.raises(PapermillExecutionError) as err:
        run(bad, tmp_path / "out-bad.ipynb", session)
    assert err.value.ename == "RuntimeError" and "compose up failed" in err.value.evalue
    assert err.value.exec_count == 2 and "raise RuntimeError" in err.value.source
    executed = json.loads((tmp_path / "out-bad.ipynb").read_text())
    assert executed["metadata"]["papermill"]["exception"] is True
    assert any("papermill-error-cell-tag" in c["metadata"].get("tags", []) for c in executed["cells"])
    pid = session.pid
    good = notebook(tmp_path / "good.ipynb", "print('fine')")
    assert "fine" in outputs(run(good, tmp_path / "out-good.ipynb", session))
    assert session.pid != pid and session.starts == 2


def test_fresh_kernel_metadata_and_the_fresh_engine(tmp_path, session) -> None:
    show = "import os\nprint(os.getpid())"
    plain = notebook(tmp_path / "plain.ipynb", show)
    wants_fresh = notebook(tmp_path / "fresh.ipynb", show, metadata={"runbook": {"fresh_kernel": True}})
    pids = [
        outputs(run(plain, tmp_path / "o1.ipynb", session)),
        outputs(run(plain, tmp_path / "o2.ipynb", session)),
        outputs(run(wants_fresh, tmp_path / "o3.ipynb", session)),
    ]
    assert pids[0] == pids[1] != pids[2]
    fresh = KernelSession(fresh=True)
    try:
        a = outputs(run(plain, tmp_path / "o4.ipynb", fresh, engine="runbook-fresh"))
        b = outputs(run(plain, tmp_path / "o5.ipynb", fresh, engine="runbook-fresh"))
    finally:
        fresh.shutdown(now=True)
    assert a != b


def test_threads_left_running_are_reported(tmp_path, session) -> None:
    lingering = notebook(
        tmp_path / "t.ipynb",
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(30,), name='lingering-worker').start()",
    )
    run(lingering, tmp_path / "o1.ipynb", session)
    run(notebook(tmp_path / "n.ipynb", "1"), tmp_path / "o2.ipynb", session)
    assert "lingering-worker" in session.last_reset["state"]["leftover_threads"]


def test_engine_works_without_a_session_as_plain_papermill(tmp_path) -> None:
    """``papermill -e runbook`` style use: the engine keeps a kernel per thread by itself."""
    nb = notebook(tmp_path / "x.ipynb", "import os\nprint(os.getcwd())")
    out = papermill.execute_notebook(
        str(nb), str(tmp_path / "o.ipynb"), engine_name="runbook", progress_bar=False
    )
    assert outputs(out).strip() == str(tmp_path)
    from helpers.runner import engine

    engine._local.session.shutdown(now=True)
    del engine._local.session


def test_cwd_is_the_notebooks_folder_like_jupyterlab_and_nbval(tmp_path, session) -> None:
    nb = notebook(tmp_path / "sub" / "x.ipynb", "import os\nprint(os.getcwd())")
    assert outputs(run(nb, tmp_path / "o.ipynb", session)).strip() == str(tmp_path / "sub")
    assert os.getcwd() != str(tmp_path / "sub")  # the runner's own working directory is untouched


@pytest.mark.parametrize("first", ["helpers.runner.engine", "papermill", "helpers.runner.cli"])
def test_entry_points_load_whatever_is_imported_first(first: str) -> None:
    """papermill loads its engine entry points while importing itself: no circular import either way."""
    import subprocess

    code = f"import {first}, papermill\nprint(papermill.engines.papermill_engines.get_engine('runbook'))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(".RunbookEngine'>")


def test_papermill_command_line_with_the_runbook_engine(tmp_path) -> None:
    import subprocess

    nb = notebook(tmp_path / "x.ipynb", "print(greeting)", params="greeting = 'hi'")
    papermill_cli = Path(sys.executable).with_name("papermill")
    proc = subprocess.run(
        [
            str(papermill_cli),
            str(nb),
            str(tmp_path / "o.ipynb"),
            "--engine",
            "runbook",
            "-p",
            "greeting",
            "hello from the warm engine",
            "--no-progress-bar",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hello from the warm engine" in (tmp_path / "o.ipynb").read_text()


def test_changed_project_modules_are_reimported_for_the_next_notebook(tmp_path) -> None:
    """Warm project modules stay loaded (the speed-up) until a notebook changes their state."""
    session = KernelSession(warm_modules=["helpers.runner.demo", "helpers.core.secrets"])
    try:
        reader = notebook(
            tmp_path / "r.ipynb",
            "from helpers.runner import demo\nfrom helpers.core import secrets\n"
            "print(id(demo), demo.PARAMETERS[:9], 'EXTRA' in vars(demo), 'FAKE' in secrets.SECRETS)",
        )
        first = outputs(run(reader, tmp_path / "o1.ipynb", session)).split()
        again = outputs(run(reader, tmp_path / "o2.ipynb", session)).split()
        assert first == again and first[1:] == ["import", "os", "False", "False"]  # unchanged: same module
        assert session.last_reset["state"]["reimported"] is False
        mutate = notebook(
            tmp_path / "m.ipynb",
            "from helpers.runner import demo\nfrom helpers.core import secrets\n"
            "demo.PARAMETERS = 'mutated'\ndemo.EXTRA = 1\nsecrets.SECRETS['FAKE'] = None",
        )
        run(mutate, tmp_path / "o3.ipynb", session)
        after = outputs(run(reader, tmp_path / "o4.ipynb", session)).split()
        assert after[1:] == ["import", "os", "False", "False"]  # the mutations did not reach this notebook
        assert after[0] != first[0]  # a fresh module object
        state = session.last_reset["state"]
        assert state["reimported"] is True and "helpers.runner.demo" in state["changed_modules"]
        grow = notebook(
            tmp_path / "g.ipynb", "from helpers.core import secrets\nsecrets.SECRETS['FAKE'] = None"
        )
        run(grow, tmp_path / "o5.ipynb", session)  # only an in-place change of a module-level dict
        assert outputs(run(reader, tmp_path / "o6.ipynb", session)).split()[-1] == "False"
        assert session.starts == 1
    finally:
        session.shutdown(now=True)


def test_importing_a_submodule_is_no_change_and_a_first_import_stays_warm_and_pristine(tmp_path) -> None:
    """``from helpers.core import display`` binds ``display`` in ``helpers.core``: not a change of the
    package (no re-import of everything); a project module first imported by a notebook is imported
    afresh and kept warm, a module beside the notebook is dropped."""
    session = KernelSession(warm_modules=["helpers.core"])
    try:
        (tmp_path / "besidemod.py").write_text("STATE = []\n")
        first = notebook(
            tmp_path / "a.ipynb",
            "import besidemod\nbesidemod.STATE.append(1)\n"
            "from helpers.runner import demo\ndemo.PARAMETERS = 'dirty'\nprint(id(demo))",
        )
        reader = notebook(
            tmp_path / "b.ipynb",
            "import sys\nprint('besidemod' in sys.modules)\n"
            "from helpers.runner import demo\nprint(id(demo), demo.PARAMETERS[:6])",
        )
        dirty_id = outputs(run(first, tmp_path / "o1.ipynb", session)).split()[0]
        out = outputs(run(reader, tmp_path / "o2.ipynb", session)).split()
        state = session.last_reset["state"]
        assert state["reimported"] is False, state  # binding submodules changed no package
        assert state["adopted_modules"] >= 1  # helpers.runner.demo (and its package): warm from now on
        assert out[0] == "False"  # the module beside the notebook was dropped
        assert out[1] != dirty_id and out[2] == "import"  # demo afresh: the notebook's change is gone
        again = outputs(run(reader, tmp_path / "o3.ipynb", session)).split()
        assert again[1] == out[1]  # kept warm: the same module object, not imported again
        assert session.last_reset["state"]["new_modules"] == 0
        assert session.starts == 1
    finally:
        session.shutdown(now=True)


def test_shutdown_is_quick_and_still_runs_the_exit_finalizers(tmp_path) -> None:
    """The kernel ends without tearing its interpreter down, after the finalizers meant for exit: a
    temporary folder the last notebook kept is removed, the process is gone, its connection file too."""
    session = KernelSession()
    keeper = notebook(
        tmp_path / "k.ipynb", "import tempfile\nkeep = tempfile.TemporaryDirectory()\nprint(keep.name)"
    )
    folder = Path(outputs(run(keeper, tmp_path / "o.ipynb", session)).strip())
    assert folder.is_dir()
    pid, connection = session.pid, Path(session.km.connection_file)
    assert connection.is_file()
    session.shutdown()
    assert not folder.exists(), "the exit finalizers did not run"
    assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    assert not connection.exists()


def test_the_kernel_listens_on_unix_sockets_of_its_own_not_on_ports_others_can_take(tmp_path) -> None:
    """Over TCP, a port jupyter_client picked can be taken by another process before the kernel binds it
    (the kernel then dies before it answers): the kernel's five channels are Unix sockets in a private
    folder instead, removed with the kernel."""
    import stat

    session = KernelSession()
    run(notebook(tmp_path / "a.ipynb", "print('up')"), tmp_path / "o.ipynb", session)
    info = session.km.get_connection_info()
    assert info["transport"] == "ipc"
    folder = Path(info["ip"]).parent
    sockets = sorted(folder.iterdir())
    assert len(sockets) == 5 and all(stat.S_ISSOCK(p.stat().st_mode) for p in sockets), sockets
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # nobody else can reach them
    session.shutdown()
    assert not folder.exists()


def test_a_kernel_that_dies_while_starting_shows_its_last_output(tmp_path, monkeypatch) -> None:
    """'Kernel died before replying' alone says nothing: the error carries what the kernel printed."""
    from helpers.runner.kernel import KernelSetupError

    spec = tmp_path / "jupyter" / "kernels" / "broken"
    spec.mkdir(parents=True)
    dies = "import sys; print('loading the kernel'); sys.exit('cannot bind: Address already in use')"
    (spec / "kernel.json").write_text(
        json.dumps({"argv": [sys.executable, "-c", dies, "{connection_file}"], "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    session = KernelSession(kernel_name="broken", startup_timeout=20)
    with pytest.raises(KernelSetupError) as failed:
        session.prepare(cwd=str(tmp_path))
    message = str(failed.value)
    assert "the broken kernel did not start" in message
    assert "loading the kernel" in message and "Address already in use" in message, message
    assert session._sockets is None  # its socket folder is gone too


@pytest.mark.parametrize("kernel", ["rb-no-such-kernel", "unlaunchable"])
def test_a_kernel_that_cannot_be_launched_leaves_no_socket_folder(tmp_path, monkeypatch, kernel) -> None:
    import tempfile

    from helpers.runner.kernel import KernelSetupError

    spec = tmp_path / "jupyter" / "kernels" / "unlaunchable"
    spec.mkdir(parents=True)
    missing = str(tmp_path / "no-such-python")
    (spec / "kernel.json").write_text(
        json.dumps({"argv": [missing, "{connection_file}"], "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    session = KernelSession(kernel_name=kernel, startup_timeout=20)
    with pytest.raises(KernelSetupError, match=f"the {kernel} kernel did not start"):
        session.prepare(cwd=str(tmp_path))
    assert not list(scratch.glob("rb-kernel-*"))  # (jupyter_client may leave its own tmp*.json there)
