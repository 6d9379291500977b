"""Stand-in for the app's Next.js web process: the edges the runbook tests, nothing more.

``GET /api/health`` answers 200 ``{"status":"ok","database":"connected","redis":"connected"}``
only when it really reaches PostgreSQL (``DATABASE_URL``) and Redis (``REDIS_URL``); otherwise
503 with ``"status": "degraded"`` and the failing part (``"database": "error: ..."``).
``POST /api/jobs`` (JSON body ``{"name": ..., "data": {...}}``) enqueues a BullMQ job on
``QUEUE_NAME`` (default ``jobs``) and answers 202 ``{"id": ..., "queue": ...}``.

Run from the app directory: ``python stub/web.py [--port N]`` (default: env ``PORT`` or 3000).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env

TIMEOUT = 3


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"error: {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def database_status() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return "error: DATABASE_URL is not set"
    try:
        with psycopg.connect(url, connect_timeout=TIMEOUT) as conn:
            conn.execute("SELECT 1").fetchone()
    except Exception as exc:
        return _error(exc)
    return "connected"


def redis_status() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        return "error: REDIS_URL is not set"
    try:
        client = redis.Redis.from_url(url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return _error(exc)
    return "connected"


def health() -> tuple[int, dict[str, str]]:
    body = {"status": "ok", "database": database_status(), "redis": redis_status()}
    if body["database"] != "connected" or body["redis"] != "connected":
        body["status"] = "degraded"
        return 503, body
    return 200, body


async def _enqueue(name: str, data: Any) -> str:
    from bullmq import Queue

    queue = Queue(_env.queue_name(), {"connection": _env.required("REDIS_URL")})
    try:
        job = await queue.add(name, data)
        return str(job.id)
    finally:
        await queue.close()


class Handler(BaseHTTPRequestHandler):
    server_version = "sample-app-stub/1"

    def _send(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/api/health":
            self._send(*health())
        else:
            self._send(404, {"error": f"no route GET {self.path}"})

    def do_POST(self) -> None:
        if self.path.split("?")[0] != "/api/jobs":
            self._send(404, {"error": f"no route POST {self.path}"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            job_id = asyncio.run(_enqueue(str(body.get("name") or "job"), body.get("data") or {}))
        except Exception as exc:
            self._send(500, {"error": _error(exc)})
            return
        self._send(202, {"id": job_id, "queue": _env.queue_name()})

    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f"web: {self.address_string()} {format % args}\n")
        sys.stdout.flush()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    _env.load()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 3000))
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"web: listening on http://{args.host}:{args.port} (queue {_env.queue_name()})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print("web: stopped", flush=True)


if __name__ == "__main__":
    main()
