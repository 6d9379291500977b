"""The container registry the images are pushed to (GHCR), read through its registry API (OCI distribution).

Only what task 2.18 needs: the **digest** a tag points at now, the one a ``docker push`` printed and a
``docker pull`` records in the image's ``RepoDigests``. It is the ``Docker-Content-Digest`` header of
``HEAD /v2/<name>/manifests/<tag>``, asked with every manifest type a registry may hold (an OCI index or
image manifest, a Docker manifest list or schema-2 manifest), so that the registry answers with the one it
stores rather than a converted one.

The scheme is Docker's rule: a registry on a loopback address (``127.0.0.1:5000``, ``localhost:5000``)
speaks plain HTTP, every other one HTTPS. Access follows the registry token protocol: a ``401`` with
``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` is answered by fetching a pull token from the
realm (anonymously for public packages, with ``username`` and ``password``, e.g. GHCR_TOKEN, for private
ones), then asking again with it. Errors are the one family of :mod:`helpers.clients.errors`.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

import httpx

from helpers.clients import errors
from helpers.clients.http import USER_AGENT, is_loopback

VENDOR = "registry"
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    """``ghcr.io/owner/repo-web:main`` taken apart: registry host, repository name, tag (or digest)."""

    registry: str
    name: str
    tag: str

    @classmethod
    def parse(cls, image: str, tag: str = "") -> Reference:
        base, _, digest = image.partition("@")
        host, sep, rest = base.partition("/")
        if not sep or not ("." in host or ":" in host or host == "localhost"):
            raise errors.InvalidRequest(
                f"{image!r} names no registry host (ghcr.io/owner/name, 127.0.0.1:5000/owner/name)",
                vendor=VENDOR,
                hint="give the image as task 2.9 recorded it (state file, key images)",
            )
        name, colon, given = rest.rpartition(":") if ":" in rest else (rest, "", "")
        return cls(host, name if colon else rest, tag or digest or given or "latest")

    @property
    def base_url(self) -> str:
        host = urllib.parse.urlsplit(f"//{self.registry}").hostname or ""
        return f"{'http' if is_loopback(host) else 'https'}://{self.registry}"

    def __str__(self) -> str:
        return f"{self.registry}/{self.name}{'@' if self.tag.startswith('sha256:') else ':'}{self.tag}"


def challenge(header: str) -> dict[str, str]:
    """``Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/r:pull"`` → its fields."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return {}
    return {k.lower(): v for k, v in re.findall(r'(\w+)="([^"]*)"', rest)}


def _error(response: httpx.Response, ref: Reference, what: str) -> errors.ApiError:
    kinds: dict[int, type[errors.ApiError]] = {
        401: errors.Unauthorized,
        403: errors.Forbidden,
        404: errors.NotFound,
        429: errors.RateLimited,
    }
    kind = kinds.get(
        response.status_code, errors.ServerError if response.status_code >= 500 else errors.ApiError
    )
    hints = {
        errors.NotFound: f"has the deploy workflow pushed {ref}? its build job's log lists the tags pushed",
        errors.Unauthorized: "for a private package set GHCR_TOKEN (a token with read:packages)",
        errors.Forbidden: "the token cannot read this package: give its account read access to the package",
    }
    return kind(
        response.text.strip()[:300] or response.reason_phrase,
        vendor=VENDOR,
        status=response.status_code,
        method=response.request.method,
        path=what,
        hint=hints.get(kind, ""),
    )


def manifest_digest(
    image: str,
    tag: str = "",
    username: str = "",
    password: str = "",
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> str:
    """The digest (``sha256:<hex>``) the registry serves for ``image:tag`` now."""
    ref = Reference.parse(image, tag)
    path = f"/v2/{ref.name}/manifests/{ref.tag}"
    headers = {"Accept": ", ".join(MANIFEST_TYPES), "User-Agent": USER_AGENT}
    with httpx.Client(base_url=ref.base_url, timeout=timeout, transport=transport) as http:
        try:
            answer = http.head(path, headers=headers)
            wanted = (
                challenge(answer.headers.get("www-authenticate", "")) if answer.status_code == 401 else {}
            )
            if wanted.get("realm"):
                params = {k: wanted[k] for k in ("service", "scope") if k in wanted}
                params.setdefault("scope", f"repository:{ref.name}:pull")
                auth = (username, password) if password else None
                granted = http.get(
                    wanted["realm"], params=params, auth=auth, headers={"User-Agent": USER_AGENT}
                )
                if granted.status_code >= 400:
                    raise _error(granted, ref, wanted["realm"])
                body = granted.json()
                token = str(body.get("token") or body.get("access_token") or "")
                answer = http.head(path, headers={**headers, "Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise errors.Unreachable(
                f"{type(exc).__name__}: {exc}",
                vendor=VENDOR,
                method="HEAD",
                path=f"{ref.base_url}{path}",
                hint=f"is the registry {ref.registry} reachable from here?",
            ) from None
    if answer.status_code >= 400:
        raise _error(answer, ref, f"{ref.base_url}{path}")
    digest = answer.headers.get("docker-content-digest", "")
    if not DIGEST.match(digest):
        raise errors.ApiError(
            f"the answer for {ref} has no Docker-Content-Digest header ({digest!r})",
            vendor=VENDOR,
            status=answer.status_code,
            method="HEAD",
            path=f"{ref.base_url}{path}",
        )
    return digest
