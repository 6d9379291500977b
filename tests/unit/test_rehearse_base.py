"""The shared stand-in plumbing: routing, auth, JSON, faults, request log, control API, transport."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest

from helpers.rehearse.base import (
    HTTPError,
    Request,
    Response,
    StandIn,
    StandInProcess,
    compile_template,
    empty_response,
    json_response,
)

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Items(StandIn):
    """A tiny stand-in: a list of items, with the vendor's error shape {"error": ...}."""

    name = "items"

    def __init__(self) -> None:
        super().__init__(tokens=[TOKEN])
        self.items: dict[int, dict[str, Any]] = {}
        self.add_route("GET", "/items", lambda r: json_response({"items": list(self.items.values())}))
        self.add_route("POST", "/items", self.create)
        self.add_route("GET", "/items/{item_id:int}", self.get)
        self.add_route("DELETE", "/items/{item_id:int}", self.delete)
        self.add_route("GET", "/public", lambda r: json_response({"ok": True}), auth=False)
        self.add_route("GET", "/boom", self.boom)

    def error_body(self, status: int, message: str, code: str | None, request: Request) -> Any:
        return {"error": code or "error", "detail": message}

    def create(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise HTTPError(422, "name is required", "invalid")
        item = {"id": len(self.items) + 1, "name": body["name"]}
        self.items[item["id"]] = item
        return json_response({"item": item}, 201)

    def get(self, request: Request) -> Response:
        item = self.items.get(request.params["item_id"])
        if item is None:
            raise HTTPError(404, "no such item", "not_found")
        return json_response({"item": item})

    def delete(self, request: Request) -> Response:
        self.items.pop(request.params["item_id"], None)
        return empty_response()

    def boom(self, request: Request) -> Response:
        raise RuntimeError("a bug")


@pytest.fixture
def server():
    with Items() as s:
        yield s


@pytest.fixture
def client(server: Items):
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as c:
        yield c


def test_context_manager_serves_on_loopback_and_stops() -> None:
    stand_in = Items()
    with stand_in as s:
        url = s.url
        assert url.startswith("http://127.0.0.1:")
        assert int(url.rsplit(":", 1)[1]) > 0
        assert httpx.get(f"{url}/public").json() == {"ok": True}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/public", timeout=2)
    with pytest.raises(RuntimeError, match="not running"):
        _ = stand_in.url


def test_json_round_trip_and_path_parameters(client: httpx.Client) -> None:
    created = client.post("/items", json={"name": "first"})
    assert created.status_code == 201
    assert created.headers["content-type"].startswith("application/json")
    assert created.json() == {"item": {"id": 1, "name": "first"}}
    assert client.get("/items/1").json()["item"]["name"] == "first"
    assert client.get("/items/1/").status_code == 200  # a trailing slash is tolerated
    assert client.delete("/items/1").status_code == 204
    assert client.delete("/items/1").content == b""


def test_bearer_auth_is_required_and_checked(server: Items) -> None:
    assert httpx.get(f"{server.url}/items").status_code == 401
    wrong = httpx.get(f"{server.url}/items", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "unauthorized", "detail": "Unable to authenticate you."}
    basic = httpx.get(f"{server.url}/items", headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    assert httpx.get(f"{server.url}/items", headers=AUTH).status_code == 200


def test_unknown_paths_methods_and_bad_parameters(client: httpx.Client) -> None:
    assert client.get("/nothing").status_code == 404
    assert client.put("/items", json={}).status_code == 405
    assert client.get("/items/abc").status_code == 404  # {item_id:int} does not match
    assert client.post("/items", json={"nom": "x"}).json() == {
        "error": "invalid",
        "detail": "name is required",
    }


def test_a_handler_bug_answers_500_and_the_server_keeps_serving(client: httpx.Client) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert "RuntimeError: a bug" in response.json()["detail"]
    assert client.get("/items").status_code == 200


def test_fault_before_answers_n_times_without_running_the_route(server: Items, client: httpx.Client) -> None:
    server.inject("/items", 503, method="POST", times=2, headers={"retry-after": "3"})
    first = client.post("/items", json={"name": "a"})
    assert first.status_code == 503
    assert first.headers["retry-after"] == "3"
    assert first.json() == {"error": "error", "detail": "Service Unavailable"}
    assert client.get("/items").status_code == 200  # another method is not affected
    assert client.post("/items", json={"name": "a"}).status_code == 503
    assert server.items == {}  # nothing was created by the faulty requests
    assert client.post("/items", json={"name": "a"}).status_code == 201
    assert server.faults == []


def test_fault_after_runs_the_route_then_loses_the_response(server: Items, client: httpx.Client) -> None:
    server.inject("/items/{item_id:int}", 500, when="after", message="lost")  # a template matches too
    client.post("/items", json={"name": "kept"})
    lost = client.get("/items/1")
    assert lost.status_code == 500
    assert lost.json()["detail"] == "lost"
    server.inject("/items", 500, method="POST", when="after")
    assert client.post("/items", json={"name": "second"}).status_code == 500
    assert [i["name"] for i in server.items.values()] == ["kept", "second"]  # it did happen
    faulty = [e for e in server.requests() if e.fault]
    assert [(e.method, e.path) for e in faulty] == [("GET", "/items/1"), ("POST", "/items")]


def test_a_dropped_connection_after_the_route_acted_gives_no_answer(
    server: Items, client: httpx.Client
) -> None:
    server.inject("/items", 0, method="POST", when="after", action="drop", kind="lost_response")
    with pytest.raises(httpx.RemoteProtocolError):  # over a real socket: the server closed, said nothing
        client.post("/items", json={"name": "made"})
    assert [i["name"] for i in server.items.values()] == ["made"]  # the server did act
    entry = server.requests("POST")[0]
    assert (entry.fault, entry.fault_kind, entry.dropped, entry.status) == (True, "lost_response", True, 201)
    assert client.get("/items").status_code == 200  # the next connection is served as usual
    server.inject("/items", 0, method="POST", when="after", action="drop")
    in_process = httpx.Client(base_url="http://items.test", transport=server.transport(), headers=AUTH)
    with pytest.raises(httpx.RemoteProtocolError):
        in_process.post("/items", json={"name": "again"})
    assert len(server.items) == 2


def test_a_slow_fault_answers_normally_after_its_delay(server: Items, client: httpx.Client) -> None:
    server.inject("/items", 0, method="GET", action="slow", delay=0.3, kind="slow")
    slow = client.get("/items")
    assert slow.status_code == 200 and slow.json() == {"items": []}
    assert server.requests()[0].fault_kind == "slow"


WRITES = {"lost_response": 2, "server_error": 1}


def chaos_run(seed: int, reads_between: int) -> tuple[list[int], dict[str, dict[str, int]]]:
    """The statuses a fixed sequence of creates meets in the fault mode (0: dropped), reads between them."""
    stand_in = Items()
    stand_in.set_chaos(seed, writes=WRITES, reads={"unavailable": 2}, write_rate=0.5, rate=0.3)
    http = httpx.Client(base_url="http://items.test", transport=stand_in.transport(), headers=AUTH)
    seen = []
    for n in range(12):
        for _ in range(reads_between):
            http.get("/items")
        try:
            seen.append(http.post("/items", json={"name": f"i{n}"}).status_code)
        except httpx.RemoteProtocolError:
            seen.append(0)
    assert stand_in.chaos is not None
    return seen, stand_in.chaos.injected


def test_the_fault_mode_is_seeded_within_its_budget_and_spares_the_standins_own_calls() -> None:
    seen, injected = chaos_run(7, reads_between=0)
    assert injected["writes"] == WRITES  # 12 creates at a chance of 1/2: the budget is spent, no more
    assert seen.count(0) == 2 and seen.count(500) == 1 and seen.count(201) == 9
    # the same seed meets the same faults on the creates, however many reads come between them
    again, with_reads = chaos_run(7, reads_between=3)
    assert again == seen and with_reads["reads"] == {"unavailable": 2}
    assert chaos_run(8, reads_between=0)[0] != seen  # another seed, other points
    stand_in = Items()
    stand_in.set_chaos(1, reads={"server_error": 5}, rate=1.0)
    http = httpx.Client(base_url="http://items.test", transport=stand_in.transport(), headers=AUTH)
    spared = http.get("/items", headers={"User-Agent": "runbook-standin (rehearsal)"})
    assert spared.status_code == 200 and http.get("/items").status_code == 500
    with pytest.raises(ValueError, match="unknown fault kinds"):
        stand_in.set_chaos(1, writes={"meteor": 1})


def test_the_fault_mode_through_the_control_api(server: Items, client: httpx.Client) -> None:
    control = httpx.Client(base_url=f"{server.url}/_standin", timeout=5)
    assert control.get("/chaos").json() == {"chaos": None}
    made = control.post("/chaos", json={"seed": 3, "reads": {"unavailable": 1}, "rate": 1.0})
    assert made.status_code == 201 and made.json()["chaos"]["reads"] == {"unavailable": 1}
    first = client.get("/items")
    assert first.status_code == 503 and first.headers["retry-after"] == "1"
    assert client.get("/items").status_code == 200  # the budget is spent
    assert control.get("/chaos").json()["chaos"]["injected"] == {"writes": {}, "reads": {"unavailable": 1}}
    assert control.post("/chaos", json={"seed": 3, "reads": {"nope": 1}}).status_code == 400
    assert control.delete("/chaos").status_code == 204 and control.get("/chaos").json() == {"chaos": None}


def test_fault_with_a_custom_body_and_wildcard_path(server: Items, client: httpx.Client) -> None:
    server.inject("*", 429, body={"custom": True}, headers={"retry-after": "1"})
    response = client.get("/items")
    assert (response.status_code, response.json()) == (429, {"custom": True})
    assert client.get("/items").status_code == 200


def test_request_log_records_bodies_and_status_but_never_headers(server: Items, client: httpx.Client) -> None:
    client.get("/items")
    client.post("/items", json={"name": "x"})
    client.get("/items/1", params={"verbose": "1"})
    log = server.requests()
    assert [(e.method, e.path, e.status) for e in log] == [
        ("GET", "/items", 200),
        ("POST", "/items", 201),
        ("GET", "/items/1", 200),
    ]
    assert log[1].body == {"name": "x"}
    assert log[2].query == {"verbose": ["1"]}
    assert log[2].route == "/items/{item_id:int}"
    assert [e.path for e in server.mutating_requests()] == ["/items"]
    assert len(server.requests(method="GET")) == 2
    assert len(server.requests(path="/items/{item_id:int}")) == 1
    assert len(server.requests(path="/items*")) == 3
    assert TOKEN not in repr(log)
    client.post(
        "/items", json={"name": "db", "postgres_password": "s3cret-value", "nested": [{"api_token": "t"}]}
    )
    assert server.requests()[-1].body == {"name": "db", "postgres_password": "[REDACTED]",
                                          "nested": [{"api_token": "[REDACTED]"}]}  # fmt: skip
    server.clear_log()
    assert server.requests() == []


def test_control_api_injects_faults_and_reads_the_log(server: Items, client: httpx.Client) -> None:
    control = httpx.Client(base_url=f"{server.url}/_standin", timeout=5)
    assert control.get("/health").json() == {"name": "items", "ok": True}
    added = control.post("/faults", json={"path": "/items", "status": 500, "method": "GET"})
    assert added.status_code == 201
    assert control.get("/faults").json()["faults"][0]["status"] == 500
    assert client.get("/items").status_code == 500
    assert client.get("/items").status_code == 200
    entries = control.get("/requests").json()["requests"]
    assert [(e["path"], e["status"], e["fault"]) for e in entries] == [
        ("/items", 500, True),
        ("/items", 200, False),
    ]
    assert control.post("/faults", json={"path": "/items"}).status_code == 400  # status missing
    control.post("/faults", json={"path": "/items", "status": 500})
    assert control.delete("/faults").status_code == 204
    assert client.get("/items").status_code == 200
    assert control.delete("/requests").status_code == 204
    assert server.requests() == []


def test_transport_answers_in_process_with_the_same_behaviour() -> None:
    stand_in = Items()  # never started: no socket
    with httpx.Client(base_url="https://api.example.test", transport=stand_in.transport(), headers=AUTH) as c:
        assert c.post("/items", json={"name": "in-process"}).status_code == 201
        assert c.get("/items/1").json()["item"]["name"] == "in-process"
        assert (
            httpx.Client(base_url="https://x", transport=stand_in.transport()).get("/items").status_code
            == 401
        )
        stand_in.inject("/items", 500)
        assert c.get("/items").status_code == 500
    assert [e.status for e in stand_in.requests()] == [201, 200, 401, 500]


def test_links_use_the_host_the_client_addressed() -> None:
    class Linker(StandIn):
        def __init__(self) -> None:
            super().__init__(tokens=[TOKEN])
            self.add_route("GET", "/self", lambda r: json_response({"next": r.url_for("/self", {"page": 2})}))

    transport_client = httpx.Client(
        base_url="https://api.example.test", transport=Linker().transport(), headers=AUTH
    )
    assert transport_client.get("/self").json()["next"] == "https://api.example.test/self?page=2"
    with Linker() as s:
        assert httpx.get(f"{s.url}/self", headers=AUTH).json()["next"] == f"{s.url}/self?page=2"


def test_concurrent_requests_are_served(server: Items) -> None:
    def create(n: int) -> int:
        return httpx.post(f"{server.url}/items", json={"name": f"n{n}"}, headers=AUTH, timeout=10).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(40)))
    assert statuses == [201] * 40
    assert sorted(server.items) == list(range(1, 41))  # the lock kept ids unique


def test_compile_template() -> None:
    regex, converters = compile_template("/v2/droplets/{droplet_id:int}/actions/{action}")
    m = regex.match("/v2/droplets/42/actions/boot")
    assert m is not None
    assert {k: converters[k](v) for k, v in m.groupdict().items()} == {"droplet_id": 42, "action": "boot"}
    assert regex.match("/v2/droplets/x/actions/boot") is None
    assert compile_template("/a/{rest:path}")[0].match("/a/b/c") is not None


def test_a_stand_in_runs_as_a_process_with_the_same_control_api() -> None:
    proc = StandInProcess("helpers.rehearse.digitalocean", env={"DIGITALOCEAN_TOKEN": TOKEN})
    with proc:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{proc.url}/v2/account", headers=auth).status_code == 200
        with proc.control() as control:
            control.post("/faults", json={"path": "/v2/account", "status": 503})
            assert httpx.get(f"{proc.url}/v2/account", headers=auth).status_code == 503
            assert [e["status"] for e in control.get("/requests").json()["requests"]] == [200, 503]
        process = proc.proc
    assert process is not None and process.returncode is not None  # stopped on SIGTERM
    assert f"listening on {proc.url}" in proc.output()


def test_the_process_refuses_to_start_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DIGITALOCEAN_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "helpers.rehearse.digitalocean", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "set DIGITALOCEAN_TOKEN in the environment" in done.stderr
