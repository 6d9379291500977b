"""The HTTP mechanism the runbook's API clients share (DigitalOcean, Coolify).

:class:`JsonApiClient` is plain httpx with the rules every vendor client follows:

* the token is checked before anything is sent (empty, or quotes/spaces around it: a clear message that
  names the secret and how to make one) and is never shown (``repr`` has the base URL only);
* the base URL comes from configuration and the transport can be swapped (tests, local stand-ins);
* a 429 is retried after its ``retry-after`` (seconds or an HTTP date; any method: a 429 was not
  processed), unless the server asks for longer than ``max_wait``;
* 5xx answers and network errors are retried only for the methods in ``retry_methods``: a failed
  ``POST`` may have been processed, so the *caller* looks before trying again;
* an error answer becomes the vendor's exception, built by :meth:`JsonApiClient._error`.

What differs per vendor is a hook of the subclass: the token's name and help, the default base URL and
its checks, extra headers, how a path becomes a request URL, the error translation, the network-error
exception and its hint, and bookkeeping of every answer (rate-limit headers). Pagination and the
resource methods stay with the vendor.
"""

from __future__ import annotations

import abc
import contextlib
import email.utils
import ipaddress
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

import httpx

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
LOOPBACK = ("localhost", "127.0.0.1", "::1")
USER_AGENT = "implementation3-runbook"
MAX_BACKOFF = 30


def backoff(attempt: int) -> float:
    """Seconds before retry number ``attempt + 1`` when the server did not say: 1, 2, 4, ... at most 30."""
    return float(min(2**attempt, MAX_BACKOFF))


def retry_delay(response: httpx.Response, attempt: int, now: Callable[[], float] = time.time) -> float:
    """Seconds to wait before retrying: ``retry-after`` (seconds or HTTP date), else backoff."""
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                parsed = email.utils.parsedate_to_datetime(value)
                return max(0.0, parsed.timestamp() - now())
    return backoff(attempt)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.2``, ``::1``)."""
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_http_url(split: urllib.parse.SplitResult) -> bool:
    """An http(s) URL with a host."""
    return split.scheme in ("http", "https") and bool(split.hostname)


def token_in_clear(split: urllib.parse.SplitResult) -> bool:
    """True when a bearer token would travel in clear text to a host other than this machine."""
    return split.scheme == "http" and not is_loopback(split.hostname or "")


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or ``{}`` when it is not one (HTML error pages, empty bodies)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class JsonApiClient(abc.ABC):
    """A bearer-token JSON API client with tested retry rules; subclasses fill in the vendor's hooks.

    ``sleep`` is injectable so tests can count the waits instead of waiting; ``max_retries`` bounds the
    retries of one request, ``max_wait`` the longest ``retry-after`` that is honoured.
    """

    #: the secret's name, as the token message says it (``DIGITALOCEAN_TOKEN``)
    token_name: ClassVar[str]
    #: the methods retried after a 5xx or a network error (a 429 is retried for every method)
    retry_methods: ClassVar[frozenset[str]] = IDEMPOTENT
    #: headers sent besides ``Authorization`` and ``User-Agent``
    extra_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        token: str,
        base_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        max_retries: int = 4,
        max_wait: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not token or token != token.strip() or token[:1] in "\"'":
            raise ValueError(
                f"{self.token_name} is empty or has quotes/spaces around it; store the bare token. "
                f"{self.token_help()}"
            )
        self.base_url = (base_url or self.default_base_url()).rstrip("/")
        self.check_base_url(urllib.parse.urlsplit(self.base_url))
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", **self.extra_headers, "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            transport=transport,
        )

    # ---------------------------------------------------------------- vendor hooks

    @abc.abstractmethod
    def token_help(self) -> str:
        """How to make and store a token (appended to the token message and to 401 hints)."""

    @abc.abstractmethod
    def default_base_url(self) -> str:
        """The base URL when none is given (from the environment or recorded state)."""

    @abc.abstractmethod
    def check_base_url(self, split: urllib.parse.SplitResult) -> None:
        """Raise ``ValueError`` (what is wrong + what to do) when the base URL cannot be used."""

    @abc.abstractmethod
    def _error(self, response: httpx.Response, method: str, path: str, sent: Any) -> Exception:
        """The vendor's exception for an error answer (``sent`` is the JSON body of the request)."""

    @abc.abstractmethod
    def _network_error(self, message: str, *, method: str, path: str, hint: str) -> Exception:
        """The vendor's exception for a request that got no HTTP answer at all."""

    @abc.abstractmethod
    def _unreachable_hint(self) -> str:
        """What to check when the API cannot be reached."""

    def _target(self, path: str) -> tuple[str, str]:
        """The URL httpx requests for ``path`` and the path errors show (default: relative, no query)."""
        url = self._relative(path)
        return url, url.split("?", 1)[0]

    def _observe(self, response: httpx.Response) -> None:
        """Called with every HTTP answer (e.g. to keep rate-limit headers); does nothing by default."""
        return None

    # ---------------------------------------------------------------- the mechanism

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _relative(self, url: str) -> str:
        """Keep requests on the configured host: an absolute link is reduced to its path and query."""
        split = urllib.parse.urlsplit(url)
        if not split.scheme:
            return url
        return urllib.parse.urlunsplit(("", "", split.path, split.query, ""))

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        """One call with the retry rules; an error answer raises the vendor's exception."""
        method = method.upper()
        url, shown = self._target(path)
        retry_failures = method in self.retry_methods
        attempt = 0
        while True:
            try:
                response = self._http.request(method, url, params=params, json=json)
            except httpx.TransportError as exc:
                if retry_failures and attempt < self.max_retries:
                    self.sleep(backoff(attempt))
                    attempt += 1
                    continue
                hint = self._unreachable_hint()
                if not retry_failures:
                    hint += "; the request may have been processed: look before trying again"
                raise self._network_error(
                    f"no answer ({type(exc).__name__}: {exc})", method=method, path=shown, hint=hint
                ) from exc
            self._observe(response)
            status = response.status_code
            retryable = status == 429 or (status >= 500 and retry_failures)
            if retryable and attempt < self.max_retries:
                delay = retry_delay(response, attempt)
                if delay <= self.max_wait:
                    self.sleep(delay)
                    attempt += 1
                    continue
            if status >= 400:
                raise self._error(response, method, shown, json)
            return response

    def _json(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None
    ) -> Any:
        """:meth:`request`, then the answer's JSON (``{}`` for an empty answer)."""
        response = self.request(method, path, params=params, json=json)
        return response.json() if response.content else {}
