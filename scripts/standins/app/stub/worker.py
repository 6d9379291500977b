"""Stand-in for the app's BullMQ worker (``pnpm worker``), using the Python ``bullmq`` package.

Python BullMQ speaks the same Redis protocol as the Node one, so jobs added by either side are
processed here. The worker consumes the queue named by ``QUEUE_NAME`` (default ``jobs``) on
``REDIS_URL``; for each job it writes a row into PostgreSQL (``DATABASE_URL``, table
``job_results``) and returns ``{"rowId": ..., "jobId": ..., "queue": ...}``, so a test can prove
the job really went through Redis, the worker and the database.

Run from the app directory: ``python stub/worker.py``. SIGTERM/SIGINT close it cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from typing import Any

import psycopg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _env

SCHEMA = """
CREATE TABLE IF NOT EXISTS job_results (
    id           bigserial PRIMARY KEY,
    job_id       text NOT NULL,
    queue        text NOT NULL,
    name         text NOT NULL,
    payload      jsonb NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
)
"""


async def ensure_schema(database_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, connect_timeout=5) as conn:
        await conn.execute(SCHEMA)


def make_processor(database_url: str, queue: str):
    async def process(job: Any, token: str) -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(database_url, connect_timeout=5) as conn:
            cur = await conn.execute(
                "INSERT INTO job_results (job_id, queue, name, payload) VALUES (%s, %s, %s, %s) RETURNING id",
                (str(job.id), queue, job.name, json.dumps(job.data)),
            )
            row = await cur.fetchone()
        print(f"worker: job {job.id} ({job.name}) -> job_results.id {row[0]}", flush=True)
        return {"rowId": row[0], "jobId": str(job.id), "queue": queue}

    return process


async def main() -> None:
    _env.load()
    database_url = _env.required("DATABASE_URL")
    redis_url = _env.required("REDIS_URL")
    queue = _env.queue_name()
    await ensure_schema(database_url)

    from bullmq import Worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(queue, make_processor(database_url, queue), {"connection": redis_url})
    print(f"worker: consuming queue {queue!r}", flush=True)
    await stop.wait()
    await worker.close()
    print("worker: stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
