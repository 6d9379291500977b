"""Which image an application runs, and which images of its repository the server holds.

Read on the server (``docker`` over SSH, as root): the running container's image, and the images of the
application's repository (``ghcr.io/<owner>/<repo>-web``) that earlier deployments pulled: Coolify keeps
them for rollbacks (``docker_images_to_keep``), which is what its own rollback list shows.

An image is identified by its **registry digest** (``RepoDigests``: ``<repository>@sha256:...``, what a
pull from GHCR records) when it has one, else by its **image id** (an image built on this machine never
went through a registry). :attr:`Image.pin` is how Coolify is told to run exactly that image: the tag
``sha256-<hex>`` makes it deploy ``<repository>@sha256:<hex>``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from helpers.core.times import now, parse_time


class ImageError(RuntimeError):
    """An image cannot be read or found on the server; the message says what to do next."""


@dataclass(frozen=True)
class Image:
    id: str  # sha256:<hex> (the image id)
    repository: str
    digest: str = ""  # sha256:<hex> of the registry manifest, when the image came from a registry
    tags: tuple[str, ...] = ()
    created: str = ""  # ISO time the image was built

    @property
    def identity(self) -> str:
        """The digest when there is one, else the image id."""
        return self.digest or self.id

    @property
    def pin(self) -> str:
        """The Coolify image tag that runs exactly this image: ``sha256-<hex>``."""
        return "sha256-" + self.identity.split(":", 1)[-1]

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.identity}"

    @property
    def short(self) -> str:
        kind = "digest" if self.digest else "image id"
        tags = f", tags {', '.join(self.tags)}" if self.tags else ""
        return f"{kind} {self.identity[:19]}…{tags}, built {self.created[:19] or '?'}"

    def same(self, other: Image | None) -> bool:
        return other is not None and self.id == other.id


def repository_of(image_ref: str) -> str:
    """``ghcr.io/o/r-web:main`` or ``...@sha256:..`` → ``ghcr.io/o/r-web``."""
    name = image_ref.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name.rsplit(":", 1)[0]
    return name


def _inspect_image(remote: Any, ref: str, repository: str) -> Image:
    out = remote.run(f"docker image inspect {shlex.quote(ref)}", check=False)
    try:
        info = json.loads(out.stdout)[0] if out.ok else None
    except (ValueError, IndexError):
        info = None
    if not info:
        raise ImageError(f"the server has no image {ref} ({out.stderr.strip()[:200]})")
    digests = [d for d in info.get("RepoDigests") or [] if d.startswith(f"{repository}@")]
    tags = tuple(t.rsplit(":", 1)[-1] for t in info.get("RepoTags") or [] if repository_of(t) == repository)
    return Image(
        id=str(info["Id"]),
        repository=repository,
        digest=digests[0].split("@", 1)[1] if digests else "",
        tags=tags,
        created=str(info.get("Created") or ""),
    )


def running(remote: Any, container: str, repository: str) -> Image:
    """The image the container runs (its id, digest and tags in ``repository``)."""
    out = remote.run(f"docker inspect --format '{{{{.Image}}}}' {shlex.quote(container)}", check=False)
    image_id = out.stdout.strip()
    if not out.ok or not image_id.startswith("sha256:"):
        raise ImageError(
            f"no container {container} on the server ({out.stderr.strip()[:200]}). "
            "Next step: deploy the application (task 2.17), or `runbook doctor phase2`"
        )
    return _inspect_image(remote, image_id, repository)


def on_server(remote: Any, repository: str) -> list[Image]:
    """Every image of ``repository`` the server holds, newest first (by build time)."""
    out = remote.run(
        f"docker images --no-trunc --format '{{{{.ID}}}}' {shlex.quote(repository)}", check=False
    )
    ids = list(dict.fromkeys(line.strip() for line in out.stdout.splitlines() if line.strip()))
    found = [_inspect_image(remote, image_id, repository) for image_id in ids]
    return sorted(found, key=lambda i: parse_time(i.created) or now(), reverse=True)


def previous(current: Image, images: Sequence[Image]) -> Image | None:
    """The newest image built before ``current`` (the release before it), or None."""
    born = parse_time(current.created)
    older = [
        i
        for i in images
        if i.id != current.id and born is not None and (parse_time(i.created) or born) < born
    ]
    return max(older, key=lambda i: parse_time(i.created)) if older else None  # type: ignore[arg-type,return-value]


def find(images: Sequence[Image], wanted: str) -> Image | None:
    """An image by tag (``sha-1a2b3c4``), digest or id (``sha256:...``, a unique prefix of 12+ hex)."""
    wanted = wanted.strip()
    by_tag = [i for i in images if wanted in i.tags]
    if by_tag:
        return by_tag[0]
    hexpart = wanted.removeprefix("sha256-").removeprefix("sha256:")
    if len(hexpart) >= 12:
        matches = [
            i for i in images if any(x.split(":", 1)[-1].startswith(hexpart) for x in (i.id, i.digest) if x)
        ]
        if len(matches) == 1:
            return matches[0]
    return None
