"""The registry client (helpers.clients.registry) against a real registry: Debian's docker-registry, started
on 127.0.0.1 by helpers.rehearse.registry (the rehearsal's stand-in for GHCR). An image manifest is pushed
through the registry API itself (no engine needed); the digest read back is the one the registry computed."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from testsupport import unavailable

from helpers.clients import errors, registry
from helpers.rehearse.registry import LocalRegistry, RegistryError


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalRegistry]:
    if shutil.which("docker-registry") is None:
        unavailable("docker-registry is not installed: scripts/provision.sh registry")
    with LocalRegistry(tmp_path / "registry") as running:
        yield running
    assert running.process is None


def push_manifest(base: str, name: str, tag: str, content: bytes) -> str:
    """A one-blob image pushed the way a client does: the config blob, then the manifest; its digest."""
    blob = json.dumps({"architecture": "amd64", "os": "linux", "x": content.decode()}).encode()
    blob_digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    started = httpx.post(f"{base}/v2/{name}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    location = location if location.startswith("http") else base + location
    joiner = "&" if "?" in location else "?"
    done = httpx.put(f"{location}{joiner}digest={blob_digest}", content=blob)
    assert done.status_code == 201, done.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(blob),
                "digest": blob_digest,
            },
            "layers": [],
        }
    ).encode()
    put = httpx.put(
        f"{base}/v2/{name}/manifests/{tag}",
        content=manifest,
        headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert put.status_code == 201, put.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def test_the_digest_of_a_tag_is_the_one_the_registry_serves(local: LocalRegistry) -> None:
    first = push_manifest(local.url, "team/demo-app-web", "main", b"one")
    image = f"{local.host}/team/demo-app-web"
    assert registry.manifest_digest(image, "main") == first
    assert registry.manifest_digest(f"{image}:main") == first
    second = push_manifest(local.url, "team/demo-app-web", "main", b"two")  # a new push moves the tag
    assert second != first and registry.manifest_digest(image, "main") == second
    assert registry.manifest_digest(image, first) == first  # a digest still answers for itself
    assert local.tags("team/demo-app-web") == ["main"]
    with pytest.raises(errors.NotFound, match="has the deploy workflow pushed"):
        registry.manifest_digest(image, "sha-0000000")
    assert local.tags("team/nothing") == []


def test_references_and_the_scheme_follow_dockers_rules() -> None:
    ref = registry.Reference.parse("ghcr.io/Team/demo-app-web:main")
    assert (ref.registry, ref.name, ref.tag, ref.base_url) == (
        "ghcr.io",
        "Team/demo-app-web",
        "main",
        "https://ghcr.io",
    )
    local = registry.Reference.parse("127.0.0.1:5000/team/x-web", "sha-1a2b3c4")
    assert (local.name, local.tag, local.base_url) == ("team/x-web", "sha-1a2b3c4", "http://127.0.0.1:5000")
    pinned = registry.Reference.parse("localhost:5000/team/x@sha256:" + "a" * 64)
    assert pinned.tag == "sha256:" + "a" * 64 and str(pinned) == "localhost:5000/team/x@sha256:" + "a" * 64
    with pytest.raises(errors.InvalidRequest, match="names no registry host"):
        registry.Reference.parse("team/demo-app-web:main")
    fields = registry.challenge(
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:t/x:pull"'
    )
    assert fields == {"realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:t/x:pull"}
    assert registry.challenge('Basic realm="x"') == {}


def test_an_unreachable_registry_and_a_missing_binary_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers.host.ports import free_port

    with pytest.raises(errors.Unreachable, match=r"is the registry 127\.0\.0\.1"):
        registry.manifest_digest(f"127.0.0.1:{free_port()}/team/x", "main", timeout=3)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RegistryError, match=r"scripts/provision\.sh registry"):
        LocalRegistry(tmp_path / "r").start()
