"""helpers.services.health against a real local HTTP server answering like the app (and unlike it)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from helpers.services import health


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        status, body = self.answers.get(self.path, (404, b'{"error": "no route"}'))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.answers = {
        "/ok": (200, json.dumps({"status": "ok", "database": "connected", "redis": "connected"}).encode()),
        "/db-down": (
            503,
            json.dumps({"status": "error", "database": "error: refused", "redis": "connected"}).encode(),
        ),
        "/sample-ok": (200, json.dumps({"db": "ok", "redis": "ok"}).encode()),
        "/sample-redis-down": (
            503,
            json.dumps({"db": "ok", "redis": "error: connect ECONNREFUSED"}).encode(),
        ),
        "/status-error": (200, json.dumps({"status": "error", "db": "ok", "redis": "ok"}).encode()),
        "/silent": (200, json.dumps({"uptime": 12}).encode()),
        "/html": (200, b"<html>hello</html>"),
        "/list": (200, b"[1, 2]"),
    }
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_ok_answer_reports_both_parts_connected(server: str) -> None:
    result = health.probe(server + "/ok")
    assert result.ok and result.status_code == 200
    assert result.connected("database") and result.connected("redis")


def test_503_names_the_failing_part(server: str) -> None:
    result = health.probe(server + "/db-down")
    assert not result.ok and result.answered and result.status_code == 503
    assert not result.connected("database") and result.part("database") == "database: error: refused"
    assert result.connected("redis")


def test_the_sample_apps_spelling_is_read_too(server: str) -> None:
    result = health.probe(server + "/sample-ok")
    assert result.ok and result.connected("database") and result.connected("redis")
    assert result.part("database") == "db: ok"
    down = health.probe(server + "/sample-redis-down")
    assert not down.ok and down.connected("database") and not down.connected("redis")
    assert down.part("redis") == "redis: error: connect ECONNREFUSED"


def test_a_200_that_says_error_or_reports_no_part_fails_the_checks(server: str) -> None:
    from helpers.core.checks import Checklist

    assert not health.probe(server + "/status-error").ok
    silent = health.probe(server + "/silent")
    assert (
        silent.ok
        and not silent.connected("database")
        and "not reported under database/db" in silent.part("database")
    )
    check = Checklist("1.15")
    health.check_health(check, server + "/silent")
    assert [f.name for f in check.failures] == ["the app reports database ok", "the app reports redis ok"]


def test_non_json_and_non_object_answers_are_not_ok(server: str) -> None:
    html = health.probe(server + "/html")
    assert not html.ok and "not JSON" in html.error
    listing = health.probe(server + "/list")
    assert not listing.ok and "not an object" in listing.error
    assert "not reported" in listing.part("database")


def test_refused_connection_is_a_result_not_an_exception() -> None:
    result = health.probe(f"http://127.0.0.1:{free_port()}/api/health", timeout=2)
    assert not result.answered and not result.ok and result.error
    assert result.part("redis").startswith("no answer")


def test_wait_healthy_stops_early_when_the_app_died() -> None:
    result = health.wait_healthy(
        f"http://127.0.0.1:{free_port()}/api/health", timeout=30, alive=lambda: "web exited"
    )
    assert not result.ok and result.error == "web exited"


@pytest.mark.parametrize("url", ["", "localhost:3000/api/health", "ftp://x/y", "http:///nohost"])
def test_bad_urls_are_refused_with_an_example(url: str) -> None:
    with pytest.raises(health.BadHealthUrl, match="http://localhost:3000/api/health"):
        health.probe(url)
