"""A rehearsal keeps what its stand-ins printed: in the workspace (``standins/<name>.log``), and the lines
where a stand-in says its own machinery failed (``Rehearsal.standin_failures``, printed when a rehearsal
fails). In a CI run the fault rehearsal's droplet "action errored", and the cause, printed by the stand-in,
was lost with its process."""

from __future__ import annotations

import textwrap

from helpers.rehearse.base import CONTROL_PREFIX, StandInProcess
from helpers.rehearse.session import STANDIN_LOGS, Rehearsal

FAILED = "fake stand-in: droplet backend failed for rb-x: the engine went away"
SERVER = textwrap.dedent(
    f"""
    import argparse, http.server
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    port = parser.parse_args().port

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "{CONTROL_PREFIX}/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    print("fake stand-in: listening", flush=True)
    print("{FAILED}", flush=True)
    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """
)


def test_closing_keeps_each_stand_in_s_output_and_its_failure_lines(tmp_path) -> None:
    (tmp_path / "rb_fake_standin.py").write_text(SERVER)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    rehearsal = Rehearsal(workspace)
    rehearsal.processes.append(StandInProcess("rb_fake_standin", cwd=tmp_path).start())
    rehearsal.close()
    assert rehearsal.processes == []
    kept = (workspace / STANDIN_LOGS / "rb_fake_standin.log").read_text(encoding="utf-8")
    assert "fake stand-in: listening" in kept
    assert rehearsal.standin_failures == [FAILED]
