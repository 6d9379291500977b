"""Images by digest: which one is the previous release, how Coolify is told to run exactly it."""

from __future__ import annotations

import pytest

from helpers.cloud import images
from helpers.cloud.images import Image

REPO = "ghcr.io/team/demo-app-web"
D1 = Image("sha256:" + "1" * 64, REPO, "", ("sha-aaa1111",), "2026-11-01T10:00:00.000000000Z")
D2 = Image("sha256:" + "2" * 64, REPO, "sha256:" + "d" * 64, ("main", "sha-bbb2222"), "2026-11-20T10:00:00Z")
D3 = Image("sha256:" + "3" * 64, REPO, "", ("sha-ccc3333",), "2026-11-25T10:00:00Z")


def test_a_digest_pins_the_image_else_its_id() -> None:
    assert D2.identity == "sha256:" + "d" * 64 and D2.pin == "sha256-" + "d" * 64
    assert D2.reference == f"{REPO}@sha256:{'d' * 64}"
    assert D1.identity == D1.id and D1.pin == "sha256-" + "1" * 64  # built here: no registry digest
    assert "image id" in D1.short and "digest" in D2.short and "sha-bbb2222" in D2.short


def test_previous_is_the_newest_image_built_before_the_running_one() -> None:
    assert images.previous(D3, [D3, D1, D2]) is D2
    assert images.previous(D2, [D1, D2, D3]) is D1
    assert images.previous(D1, [D1, D2, D3]) is None  # nothing older: no rollback
    assert images.previous(D2, [D2]) is None


@pytest.mark.parametrize(
    ("wanted", "found"),
    [
        ("sha-aaa1111", D1),
        ("main", D2),
        ("sha256:" + "d" * 64, D2),
        ("sha256-" + "1" * 20, D1),
        ("33333333333333", D3),
        ("sha-zzz", None),
        ("1234", None),  # too short to be an id
    ],
)
def test_find_by_tag_digest_or_id_prefix(wanted: str, found: Image | None) -> None:
    assert images.find([D1, D2, D3], wanted) is found


@pytest.mark.parametrize(
    ("ref", "repository"),
    [
        ("ghcr.io/team/demo-app-web:main", "ghcr.io/team/demo-app-web"),
        ("ghcr.io/team/demo-app-web@sha256:abc", "ghcr.io/team/demo-app-web"),
        ("localhost:5000/team/web:sha-1", "localhost:5000/team/web"),
        ("localhost:5000/team/web", "localhost:5000/team/web"),
    ],
)
def test_repository_of_an_image_reference(ref: str, repository: str) -> None:
    assert images.repository_of(ref) == repository
