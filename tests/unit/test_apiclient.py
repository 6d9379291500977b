"""helpers/clients/http.py: the shared client mechanism, through a minimal vendor over httpx.MockTransport."""

from __future__ import annotations

import email.utils
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from helpers.clients import http as apiclient
from helpers.clients.http import JsonApiClient

TOKEN = "dop_v1_secret-token-value"
BASE = "https://api.example.test"


class VendorError(RuntimeError):
    def __init__(self, message: str, *, status: int = 0, method: str = "", path: str = "", hint: str = ""):
        self.status, self.method, self.path, self.hint = status, method, path, hint
        super().__init__(f"Vendor {method} {path} answered {status}: {message}\nnext step: {hint}")


class Vendor(JsonApiClient):
    token_name = "VENDOR_TOKEN"

    def token_help(self) -> str:
        return "make one at https://vendor.example/tokens"

    def default_base_url(self) -> str:
        return BASE

    def check_base_url(self, split: urllib.parse.SplitResult) -> None:
        if not apiclient.is_http_url(split):
            raise ValueError(f"VENDOR_URL {self.base_url!r} is not an http(s) URL")
        if apiclient.token_in_clear(split):
            raise ValueError(f"refusing to send the token over plain http to {split.hostname}")

    def _error(self, response: httpx.Response, method: str, path: str, sent: Any) -> VendorError:
        body = apiclient.error_body(response)
        return VendorError(
            str(body.get("message", "?")), status=response.status_code, method=method, path=path, hint="wait"
        )

    def _network_error(self, message: str, *, method: str, path: str, hint: str) -> VendorError:
        return VendorError(message, method=method, path=path, hint=hint)

    def _unreachable_hint(self) -> str:
        return "check the network"


Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*answers: httpx.Response | Exception) -> tuple[list[httpx.Request], Handler]:
    """A handler that gives ``answers`` in order (an exception is raised) and records the requests."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return seen, handler


def make(handler: Handler, **kwargs: Any) -> tuple[Vendor, list[float]]:
    slept: list[float] = []
    client = Vendor(TOKEN, BASE, transport=httpx.MockTransport(handler), sleep=slept.append, **kwargs)
    return client, slept


def test_retry_after_in_seconds_an_http_date_or_backoff() -> None:
    def answer(value: str | None) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": value} if value else {})

    assert apiclient.retry_delay(answer("7"), 0) == 7
    assert apiclient.retry_delay(answer("-3"), 0) == 0
    date = email.utils.formatdate(1_800_000_045, usegmt=True)
    assert apiclient.retry_delay(answer(date), 0, now=lambda: 1_800_000_000) == pytest.approx(45)
    assert apiclient.retry_delay(answer(date), 0, now=lambda: 1_900_000_000) == 0
    assert apiclient.retry_delay(answer("soon, maybe"), 2) == 4  # neither: the backoff
    assert [apiclient.retry_delay(answer(None), n) for n in (0, 1, 2, 3, 4, 5, 9)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_429_is_retried_after_its_retry_after_then_succeeds_even_for_post() -> None:
    seen, handler = scripted(
        httpx.Response(429, headers={"retry-after": "3"}),
        httpx.Response(429, headers={"retry-after": "5"}),
        httpx.Response(201, json={"id": 1}),
    )
    client, slept = make(handler)
    assert client._json("POST", "/things", json={"name": "a"}) == {"id": 1}
    assert slept == [3, 5]
    assert [r.method for r in seen] == ["POST"] * 3


def test_a_retry_after_longer_than_max_wait_is_an_error_at_once() -> None:
    seen, handler = scripted(
        httpx.Response(429, headers={"retry-after": "600"}, json={"message": "slow down"})
    )
    client, slept = make(handler, max_wait=60)
    with pytest.raises(VendorError, match="answered 429: slow down") as caught:
        client.request("GET", "/things")
    assert caught.value.status == 429 and caught.value.hint == "wait"
    assert slept == [] and len(seen) == 1


def test_retries_stop_after_max_retries_with_backoff() -> None:
    seen, handler = scripted(*[httpx.Response(503, json={"message": "busy"})] * 4)
    client, slept = make(handler, max_retries=3)
    with pytest.raises(VendorError, match="answered 503: busy"):
        client.request("GET", "/things")
    assert slept == [1, 2, 4] and len(seen) == 4


def test_a_5xx_is_retried_for_get_but_never_for_post() -> None:
    seen, handler = scripted(httpx.Response(502), httpx.Response(200, json={"ok": True}))
    client, slept = make(handler)
    assert client.request("GET", "/things").json() == {"ok": True}
    assert slept == [1] and len(seen) == 2

    seen, handler = scripted(httpx.Response(500, json={"message": "oops"}), httpx.Response(201, json={}))
    client, slept = make(handler)
    with pytest.raises(VendorError, match="answered 500: oops"):
        client.request("POST", "/things", json={"name": "a"})
    assert slept == [] and len(seen) == 1


def test_the_methods_retried_after_failures_are_the_vendors_choice() -> None:
    class GetOnly(Vendor):
        retry_methods = frozenset({"GET"})

    seen, handler = scripted(httpx.Response(503), httpx.Response(200))
    slept: list[float] = []
    client = GetOnly(TOKEN, BASE, transport=httpx.MockTransport(handler), sleep=slept.append)
    with pytest.raises(VendorError, match="answered 503"):
        client.request("put", "/things/1", json={})
    assert len(seen) == 1 and seen[0].method == "PUT" and slept == []


def test_network_errors_are_retried_for_get_and_explained_for_post() -> None:
    failure = httpx.ConnectError("connection refused")
    seen, handler = scripted(failure, failure, httpx.Response(200, json=[1]))
    client, slept = make(handler)
    assert client.request("GET", "/things").json() == [1]
    assert slept == [1, 2] and len(seen) == 3

    seen, handler = scripted(failure)
    client, slept = make(handler)
    with pytest.raises(VendorError) as caught:
        client.request("POST", "/things?dry=1", json={})
    assert "no answer (ConnectError: connection refused)" in str(caught.value)
    assert (
        caught.value.hint
        == "check the network; the request may have been processed: look before trying again"
    )
    assert caught.value.path == "/things"  # the query is not shown
    assert slept == [] and len(seen) == 1

    seen, handler = scripted(*[failure] * 3)
    client, slept = make(handler, max_retries=2)
    with pytest.raises(VendorError) as caught:
        client.request("GET", "/things")
    assert caught.value.hint == "check the network" and slept == [1, 2]


def test_headers_json_and_requests_stay_on_the_configured_host() -> None:
    seen, handler = scripted(httpx.Response(200, json={"a": 1}), httpx.Response(204))
    client, _ = make(handler)
    assert client._json("GET", "https://elsewhere.example/v2/things?page=2") == {"a": 1}
    assert client._json("DELETE", "/v2/things/1") == {}
    first = seen[0]
    assert first.url == httpx.URL(f"{BASE}/v2/things?page=2")
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["user-agent"] == apiclient.USER_AGENT


def test_the_vendor_adds_headers_and_observes_every_answer() -> None:
    statuses: list[int] = []

    class Observing(Vendor):
        extra_headers = {"Accept": "application/json"}  # noqa: RUF012

        def _observe(self, response: httpx.Response) -> None:
            statuses.append(response.status_code)

    seen, handler = scripted(httpx.Response(429, headers={"retry-after": "0"}), httpx.Response(200))
    client = Observing(TOKEN, BASE, transport=httpx.MockTransport(handler), sleep=lambda _: None)
    client.request("GET", "/things")
    assert statuses == [429, 200]
    assert seen[0].headers["accept"] == "application/json"


@pytest.mark.parametrize("token", ["", " " + TOKEN, TOKEN + "\n", f'"{TOKEN}"', f"'{TOKEN}'"])
def test_a_token_with_quotes_or_spaces_is_refused_with_the_next_step(token: str) -> None:
    with pytest.raises(ValueError, match="VENDOR_TOKEN is empty or has quotes/spaces") as caught:
        Vendor(token, BASE)
    assert "make one at https://vendor.example/tokens" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_base_url_checks_and_default() -> None:
    assert Vendor(TOKEN).base_url == BASE
    assert Vendor(TOKEN, "http://127.0.0.1:8089/").base_url == "http://127.0.0.1:8089"
    assert Vendor(TOKEN, "http://localhost:8089").base_url == "http://localhost:8089"
    assert Vendor(TOKEN, "http://127.0.0.2:8089").base_url == "http://127.0.0.2:8089"
    assert Vendor(TOKEN, "http://[::1]:8089").base_url == "http://[::1]:8089"
    with pytest.raises(ValueError, match=r"refusing to send the token over plain http to 203\.0\.113\.7"):
        Vendor(TOKEN, "http://203.0.113.7:8000")
    for bad in ("ftp://api.example.test", "api.example.test", "https://"):
        with pytest.raises(ValueError, match="is not an http"):
            Vendor(TOKEN, bad)


def test_loopback_and_clear_text_predicates() -> None:
    assert all(apiclient.is_loopback(h) for h in ("localhost", "127.0.0.1", "127.1.2.3", "::1"))
    assert not any(apiclient.is_loopback(h) for h in ("", "example.com", "10.0.0.1", "::2"))
    split = urllib.parse.urlsplit
    assert apiclient.token_in_clear(split("http://203.0.113.7:8000/api/v1"))
    assert not apiclient.token_in_clear(split("https://203.0.113.7"))
    assert not apiclient.token_in_clear(split("http://127.0.0.1:8000"))


def test_repr_never_shows_the_token_and_the_client_closes() -> None:
    with Vendor(TOKEN, BASE, transport=httpx.MockTransport(lambda r: httpx.Response(200))) as client:
        assert repr(client) == f"Vendor(base_url={BASE!r})"
        assert TOKEN not in repr(client) and TOKEN not in str(vars(client).get("base_url"))
    assert client._http.is_closed


def test_error_body_is_a_dict_or_empty() -> None:
    assert apiclient.error_body(httpx.Response(400, json={"message": "bad"})) == {"message": "bad"}
    assert apiclient.error_body(httpx.Response(400, json=["a"])) == {}
    assert apiclient.error_body(httpx.Response(502, text="<html>Bad gateway</html>")) == {}
    assert apiclient.error_body(httpx.Response(500)) == {}


def test_a_vendor_must_fill_in_every_hook() -> None:
    class Incomplete(JsonApiClient):
        token_name = "X"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(TOKEN, BASE)  # type: ignore[abstract]
