"""The droplet: the idempotent steps and checks of tasks 2.1 (token, account) and 2.2 (droplet, firewall).

Built on the DigitalOcean client (:mod:`helpers.clients.digitalocean`): task 2.1 proves the token and the
account can create a droplet; task 2.2 validates the choice of region, size and image against the API's own
lists, registers the SSH key once (by fingerprint), creates the tag and the cloud firewall, creates the
droplet without ever making a duplicate (:func:`create_droplet_once`), waits until it is active, and records
what later tasks need in the phase-2 state file.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.clients.digitalocean import (
    TOKEN_NAME,
    TOKEN_SCOPES,
    TOKEN_URL,
    VENDOR,
    Client,
    api_url,
    token_help,
    token_source,
)
from helpers.clients.errors import ApiError, Conflict, Forbidden, InvalidRequest, ServerError, Unreachable
from helpers.core import poll, secrets, steps
from helpers.core.settings import env
from helpers.core.steps import StepResult

# Why each scope is needed (shown by task 2.1).
SCOPE_REASONS: dict[str, str] = {
    "account:read": "2.1 checks the account: status, email verified, droplet limit",
    "droplet:create": "2.2 creates the droplet",
    "droplet:read": "2.2 looks for an existing droplet first and waits until it is active",
    "droplet:delete": "to destroy the droplet when the project ends (no task deletes it by itself)",
    "ssh_key:create": "2.2 registers your public SSH key once",
    "ssh_key:read": "2.2 finds the key by fingerprint instead of adding it twice",
    "firewall:create": "2.2 creates the cloud firewall (22, 80, 443, 8000)",
    "firewall:read": "2.2 finds the firewall by name and compares its rules",
    "firewall:update": "2.2 corrects the rules (e.g. closes 8000 once a domain is set)",
    "tag:create": "2.2 creates the tag that identifies the droplet and attaches the firewall",
    "tag:read": "2.2 finds droplets and the firewall's attachment by tag",
    "regions:read": "2.2 validates the region against the API's list",
    "sizes:read": "2.2 validates the size (and its price) against the API's list",
    "image:read": "2.2 validates the image against the API's list",
    "actions:read": "2.2 follows the droplet's create action",
}

# What a read-only probe of each read scope calls (task 2.1 verifies the token with these).
READ_PROBES: tuple[tuple[str, str], ...] = (
    ("account:read", "/v2/account"),
    ("droplet:read", "/v2/droplets"),
    ("ssh_key:read", "/v2/account/keys"),
    ("firewall:read", "/v2/firewalls"),
    ("tag:read", "/v2/tags"),
    ("regions:read", "/v2/regions"),
    ("sizes:read", "/v2/sizes"),
    ("image:read", "/v2/images"),
)


# Coolify's documented minimum server: 2 vCPU, 2 GB RAM, 30 GB disk.
COOLIFY_MIN_VCPUS, COOLIFY_MIN_MEMORY_MB, COOLIFY_MIN_DISK_GB = 2, 2048, 30


# --------------------------------------------------------------------------- task 2.1: the token and account


def check_account(check: Any, client: Client, droplets_needed: int = 1) -> dict[str, Any]:
    """Record the account checks of task 2.1 on a :class:`helpers.core.checks.Checklist`."""
    account = (
        check.call("the token is accepted (GET /v2/account)", lambda: client.account(), hint=token_help())
        or {}
    )
    if not account:
        return {}
    check(
        "account status is active",
        account.get("status") == "active",
        f"{account.get('status')} {account.get('status_message') or ''}".strip(),
        hint="a 'warning' or 'locked' account cannot create droplets: see the banner in the control "
        "panel (billing, verification) and contact DigitalOcean support",
    )
    check(
        "email address verified",
        account.get("email_verified") is True,
        account.get("email_verified"),
        hint="open the verification mail DigitalOcean sent at sign-up (or resend it from the control panel)",
    )
    existing = len(client.droplets())
    limit = int(account.get("droplet_limit") or 0)
    check(
        f"droplet limit leaves room for {droplets_needed} more",
        limit - existing >= droplets_needed,
        f"limit {limit}, in use {existing}",
        hint="delete an unused droplet or ask DigitalOcean support to raise the droplet limit",
    )
    return account


def check_token_scopes(check: Any, client: Client) -> list[str]:
    """Probe each read scope with a harmless GET; record one check per scope. Returns missing scopes."""
    missing = []
    for scope, path in READ_PROBES:
        try:
            client.get(path, {"per_page": 1})
            ok, detail = True, "granted"
        except Forbidden:
            ok, detail = False, "403 forbidden"
            missing.append(scope)
        check(
            f"token can {scope}",
            ok,
            detail,
            hint=f"generate a new token that includes {scope} ({TOKEN_URL}); scopes cannot be added later",
        )
    return missing


def check_token_and_account(check: Any, droplets_needed: int = 1) -> Client | None:
    """Task 2.1's whole verification: token configured and accepted, account able, read scopes granted."""
    configured = secrets.has(TOKEN_NAME)
    check("token is configured", configured, token_source(), hint=token_help())
    if not configured:
        return None
    token = secrets.get(TOKEN_NAME)
    check(
        "token has the shape of a personal access token",
        token.startswith("dop_v1_") and token == token.strip(),
        "as expected" if token.startswith("dop_v1_") else "unexpected shape",
        hint="personal access tokens start with dop_v1_; copy the whole token, without quotes or spaces",
    )
    client = Client(token, api_url())
    account = check_account(check, client, droplets_needed)
    if not account:
        return client
    check_token_scopes(check, client)
    limit = client.rate_limit
    check(
        "API rate limit leaves room for the runbook",
        limit is not None and limit.remaining >= 100,
        f"{limit.remaining} of {limit.limit} requests left this hour" if limit else "no rate-limit headers",
        hint="wait for the hourly window to move on (ratelimit-reset) or stop other scripts using this token",
    )
    return client


def ask_for_token(ask: bool) -> None:
    """With ``ask``, and no token set yet: ask for it (hidden input) and keep it in the secrets file."""
    if ask and not secrets.has(TOKEN_NAME):
        import getpass

        secrets.put(TOKEN_NAME, getpass.getpass("DigitalOcean token (input hidden): ").strip())


def token_rows() -> list[tuple[str, str]]:
    """Where the token and the API are (never the token itself)."""
    return [("token", f"{TOKEN_NAME} from {token_source()}"), ("API", api_url())]


def scope_rows() -> list[tuple[str, str]]:
    return [(scope, SCOPE_REASONS[scope]) for scope in TOKEN_SCOPES]


# --------------------------------------------------------------------------- task 2.2: specs


@dataclass(frozen=True)
class DropletSpec:
    """What task 2.2 asks DigitalOcean for. ``tag`` identifies the droplet (lookups, firewall)."""

    name: str
    region: str
    size: str
    image: str
    tag: str
    extra_tags: tuple[str, ...] = ()
    monitoring: bool = True
    backups: bool = False
    ipv6: bool = False

    @property
    def tags(self) -> list[str]:
        return [self.tag, *(t for t in self.extra_tags if t and t != self.tag)]

    def request_body(self, ssh_key_fingerprint: str) -> dict[str, Any]:
        """The exact body of ``POST /v2/droplets``."""
        return {
            "name": self.name,
            "region": self.region,
            "size": self.size,
            "image": self.image,
            "ssh_keys": [ssh_key_fingerprint],
            "backups": self.backups,
            "ipv6": self.ipv6,
            "monitoring": self.monitoring,
            "tags": self.tags,
        }


def firewall_ports(domain: str) -> tuple[int, ...]:
    """22, 80, 443, and 8000 (Coolify's dashboard) only while no domain fronts it."""
    return (22, 80, 443) if domain.strip() else (22, 80, 443, 8000)


ANYWHERE = ["0.0.0.0/0", "::/0"]


@dataclass(frozen=True)
class FirewallSpec:
    name: str
    tag: str
    ports: tuple[int, ...]

    def request_body(self) -> dict[str, Any]:
        """Inbound: only ``ports`` over TCP from anywhere; outbound: everything (updates, images)."""
        return {
            "name": self.name,
            "inbound_rules": [
                {"protocol": "tcp", "ports": str(p), "sources": {"addresses": list(ANYWHERE)}}
                for p in self.ports
            ],
            "outbound_rules": [
                {
                    "protocol": proto,
                    "ports": "0" if proto == "icmp" else "all",
                    "destinations": {"addresses": list(ANYWHERE)},
                }
                for proto in ("tcp", "udp", "icmp")
            ],
            "droplet_ids": [],
            "tags": [self.tag],
        }


def _rule_key(rule: Mapping[str, Any], target: str) -> tuple[Any, ...]:
    ports = str(rule.get("ports", "0"))
    if rule.get("protocol") == "icmp" or ports.lower() in ("all", "0", "1-65535"):
        ports = "all"
    where = rule.get(target) or {}
    return (
        rule.get("protocol"),
        ports,
        tuple(sorted(where.get("addresses") or [])),
        tuple(sorted(where.get("tags") or [])),
        tuple(sorted(where.get("droplet_ids") or [])),
        tuple(sorted(where.get("load_balancer_uids") or [])),
    )


def normalized_rules(firewall: Mapping[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """A firewall's rules in a comparable form (order-free; 'all' == '0' == '1-65535')."""
    return {
        "inbound": sorted(_rule_key(r, "sources") for r in firewall.get("inbound_rules") or []),
        "outbound": sorted(_rule_key(r, "destinations") for r in firewall.get("outbound_rules") or []),
    }


def open_inbound_ports(firewall: Mapping[str, Any]) -> list[str]:
    """Inbound ports open to anyone (0.0.0.0/0), e.g. ['22', '443']."""
    out = []
    for rule in firewall.get("inbound_rules") or []:
        if "0.0.0.0/0" in ((rule.get("sources") or {}).get("addresses") or []):
            out.append(str(rule.get("ports")) if rule.get("protocol") != "icmp" else "icmp")
    return sorted(out, key=lambda p: (len(p), p))


# --------------------------------------------------------------------------- task 2.2: validating the choice


class InvalidChoice(ValueError):
    """Region, size or image are not what the API offers; the message lists what it does offer."""


@dataclass
class Choice:
    region: dict[str, Any]
    size: dict[str, Any]
    image: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    @property
    def monthly_price(self) -> float:
        return float(self.size.get("price_monthly") or 0)

    def rows(self) -> list[tuple[str, str, str]]:
        s = self.size
        return [
            ("region", self.region["slug"], self.region.get("name", "")),
            (
                "size",
                s["slug"],
                f"{s['vcpus']} vCPU, {s['memory'] // 1024} GB RAM, {s['disk']} GB disk, "
                f"${s['price_monthly']:.2f}/month",
            ),
            (
                "image",
                str(self.image.get("slug") or self.image["id"]),
                f"{self.image.get('distribution', '')} {self.image.get('name', '')}".strip(),
            ),
        ]


def _listing(values: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f", … ({len(values) - limit} more)" if len(values) > limit else "") if values else "none"


def validate_choice(client: Client, spec: DropletSpec) -> Choice:
    """Check region, size and image against the API's own lists; raise :class:`InvalidChoice`."""
    regions = client.regions()
    sizes = client.sizes()
    images = client.images()
    available = [r["slug"] for r in regions if r.get("available")]
    region = next((r for r in regions if r["slug"] == spec.region), None)
    if region is None:
        raise InvalidChoice(
            f"region {spec.region!r} is not a DigitalOcean region; available: {_listing(available)}"
        )
    if not region.get("available"):
        raise InvalidChoice(
            f"region {spec.region!r} takes no new droplets now; available: {_listing(available)}"
        )
    size = next((s for s in sizes if s["slug"] == spec.size), None)
    in_region = [s["slug"] for s in sizes if s.get("available") and spec.region in (s.get("regions") or [])]
    suitable = [
        s["slug"]
        for s in sizes
        if s["slug"] in in_region
        and s["vcpus"] >= COOLIFY_MIN_VCPUS
        and s["memory"] >= COOLIFY_MIN_MEMORY_MB
        and s["disk"] >= COOLIFY_MIN_DISK_GB
    ]
    if size is None or not size.get("available"):
        what = "is not a size DigitalOcean offers" if size is None else "is no longer available"
        raise InvalidChoice(
            f"size {spec.size!r} {what}; sizes in {spec.region} big enough for Coolify: {_listing(suitable)}"
        )
    if spec.region not in (size.get("regions") or []) or spec.size not in (
        region.get("sizes") or [spec.size]
    ):
        raise InvalidChoice(
            f"size {spec.size!r} is not offered in region {spec.region}; offered there (big enough for "
            "Coolify): "
            f"{_listing(suitable)}; or pick a region among {_listing(size.get('regions') or [])}"
        )
    image = next((i for i in images if spec.image in (i.get("slug"), str(i.get("id")))), None)
    distributions = [i["slug"] for i in images if i.get("slug") and i.get("type") in ("base", "distribution")]
    if image is None:
        raise InvalidChoice(
            f"image {spec.image!r} is not listed by GET /v2/images; e.g. {_listing(distributions)}"
        )
    if image.get("status") not in (None, "available"):
        raise InvalidChoice(f"image {spec.image!r} is {image.get('status')}; e.g. {_listing(distributions)}")
    if spec.region not in (image.get("regions") or []):
        raise InvalidChoice(
            f"image {spec.image!r} is not available in {spec.region}; "
            f"it is in {_listing(image.get('regions') or [])}"
        )
    if (image.get("min_disk_size") or 0) > size["disk"]:
        raise InvalidChoice(
            f"image {spec.image!r} needs {image['min_disk_size']} GB of disk; {spec.size} has {size['disk']}"
        )
    problems = []
    if size["vcpus"] < COOLIFY_MIN_VCPUS or size["memory"] < COOLIFY_MIN_MEMORY_MB:
        problems.append(f"{spec.size} is below Coolify's minimum of 2 vCPU and 2 GB RAM")
    if size["disk"] < COOLIFY_MIN_DISK_GB:
        problems.append(f"{spec.size} has {size['disk']} GB of disk; Coolify wants 30 GB or more")
    return Choice(region=region, size=size, image=image, problems=problems)


# --------------------------------------------------------------------------- task 2.2: SSH keys


SSH_KEY_TYPES = (
    "ssh-rsa",
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def fingerprint(public_key: str) -> str:
    """DigitalOcean's fingerprint of an OpenSSH public key: MD5 of the key blob, colon-separated hex.

    Raises ``ValueError`` naming what is wrong with the key.
    """
    parts = public_key.strip().split()
    if len(parts) < 2:
        raise ValueError("public_key must look like '<type> <base64 data> [comment]'")
    kind, data = parts[0], parts[1]
    if kind not in SSH_KEY_TYPES:
        raise ValueError(f"public_key type {kind!r} is not supported; use one of {', '.join(SSH_KEY_TYPES)}")
    try:
        blob = base64.b64decode(data, validate=True)
    except ValueError:
        raise ValueError("public_key data is not valid base64") from None
    n = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
    if n < 0 or blob[4 : 4 + n].decode("ascii", "replace") != kind:
        raise ValueError(f"public_key data does not encode a {kind} key")
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()  # the fingerprint format, not security
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def default_ssh_key() -> Path:
    """The private key whose public half 2.2 registers: ``RUNBOOK_SSH_KEY``, else task 2.3's default
    (``helpers.cloud.ssh.default_key_path``: in ``RUNBOOK_SSH_DIR``, else in ``~/.ssh``)."""
    if env.ssh_key:
        return Path(env.ssh_key).expanduser()
    try:
        from helpers.cloud.ssh import default_key_path
    except ImportError:
        return Path("~/.ssh/id_ed25519").expanduser()
    return default_key_path()


def read_public_key(path: str | Path) -> str:
    """The one-line OpenSSH public key in ``path``, checked; clear errors for the usual mistakes."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"public key {p} does not exist; let task 2.2 generate it (dry_run=False) or "
            f"run `ssh-keygen -t ed25519 -f {p.with_suffix('')}`"
        )
    text = p.read_text(encoding="utf-8", errors="replace").strip()
    if "PRIVATE KEY" in text:
        raise ValueError(
            f"{p} is a private key; point at the public half ({p}.pub) and never upload the private one"
        )
    try:
        fingerprint(text)
    except ValueError as exc:
        raise ValueError(f"{p} is not an OpenSSH public key: {exc}") from None
    return text


def ensure_local_keypair(
    private_key: str | Path, dry_run: bool = False, comment: str = "implementation3-runbook"
) -> StepResult:
    """Make sure ``private_key`` and ``private_key.pub`` exist (ed25519, mode 600); never overwrite."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Path(private_key).expanduser()
    pub = key.with_name(key.name + ".pub")
    name = f"local SSH key pair {key}"
    if pub.is_file() and key.is_file():
        return steps.ok(name, "exists")
    if pub.is_file() and not key.is_file():
        return steps.ok(name, f"public key {pub} exists (its private half is elsewhere: fine for this task)")
    if key.is_file():
        if dry_run:
            return steps.changed(name, f"would write {pub} from the existing private key", dry_run=True)
        private = serialization.load_ssh_private_key(key.read_bytes(), password=None)
        line = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        pub.write_text(f"{line.decode()} {comment}\n", encoding="utf-8")
        return steps.changed(name, f"wrote {pub} from the existing private key")
    if dry_run:
        return steps.changed(name, f"would generate an ed25519 key pair at {key}", dry_run=True)
    key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = Ed25519PrivateKey.generate()
    data = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    pub.write_text(f"{line.decode()} {comment}\n", encoding="utf-8")
    return steps.changed(name, f"generated an ed25519 key pair ({key}, {pub.name})")


def ensure_ssh_key(
    client: Client, public_key_path: str | Path, name: str, dry_run: bool = False
) -> tuple[StepResult, dict[str, Any] | None, str]:
    """Register the public key once, found by fingerprint. Returns (result, key or None, fingerprint)."""
    step = "SSH key registered with DigitalOcean"
    if dry_run and not Path(public_key_path).expanduser().is_file():
        return (
            steps.changed(step, f"would register {public_key_path} (generated first)", dry_run=True),
            None,
            "",
        )
    text = read_public_key(public_key_path)
    fp = fingerprint(text)
    existing = client.ssh_key(fp)
    if existing is not None:
        return (
            steps.ok(step, f"already registered as {existing['name']!r} (id {existing['id']}, {fp})"),
            existing,
            fp,
        )
    body = {"name": name, "public_key": text}
    diff = f"POST {client.base_url}/v2/account/keys\n{json.dumps(body, indent=2)}"
    if dry_run:
        return steps.changed(step, f"would register {fp} as {name!r}", diff=diff, dry_run=True), None, fp
    try:
        key = client.create_ssh_key(name, text)
    except InvalidRequest as exc:
        if "already in use" not in exc.api_message:
            raise
        key = client.ssh_key(fp)  # registered meanwhile (or by a lost response): use it
        if key is None:
            raise
        return steps.ok(step, f"already registered as {key['name']!r} (id {key['id']}, {fp})"), key, fp
    return steps.changed(step, f"registered {fp} as {name!r} (id {key['id']})", diff=diff), key, fp


def ensure_tag(client: Client, tag: str, dry_run: bool = False) -> StepResult:
    step = f"tag {tag!r}"
    if client.tag(tag) is not None:
        return steps.ok(step, "exists")
    if dry_run:
        return steps.changed(
            step,
            "would create it",
            diff=f"POST {client.base_url}/v2/tags\n{json.dumps({'name': tag})}",
            dry_run=True,
        )
    client.create_tag(tag)
    return steps.changed(step, "created")


# --------------------------------------------------------------------------- task 2.2: the droplet


class PaidResourceRefused(RuntimeError):
    """A droplet would be created, which costs money, and ``allow_create_paid`` is off."""


def find_droplets(client: Client, spec: DropletSpec) -> list[dict[str, Any]]:
    """Droplets that already are this one: same name or carrying its tag (deduplicated)."""
    found: dict[int, dict[str, Any]] = {}
    for d in client.droplets(name=spec.name) + client.droplets(tag_name=spec.tag):
        found[d["id"]] = d
    return [found[i] for i in sorted(found)]


def require_paid_permission(
    existing: Sequence[Mapping[str, Any]], choice: Choice, allow_create_paid: bool, dry_run: bool
) -> str:
    """Raise :class:`PaidResourceRefused` before anything changes if a droplet would be bought unasked."""
    if existing:
        return "the droplet exists: nothing will be bought"
    price = f"${choice.monthly_price:.2f}/month (${choice.size.get('price_hourly', 0):.4f}/hour)"
    if dry_run:
        return f"dry-run: a droplet costing {price} would be created"
    if not allow_create_paid:
        raise PaidResourceRefused(
            f"creating the droplet costs {price}, billed until it is destroyed. Re-run with "
            "allow_create_paid=True (papermill: -p allow_create_paid True; or RUNBOOK_ALLOW_PAID=1), "
            "or with dry_run=True to see the exact request first"
        )
    return f"a droplet costing {price} will be created (allow_create_paid=True)"


def check_preflight(
    check: Any, choice: Choice, existing: Sequence[Mapping[str, Any]], allow_create_paid: bool, dry_run: bool
) -> None:
    """Task 2.2's checks before anything changes: size fit for Coolify, no ambiguity, permission to buy."""
    check(
        "size is big enough for Coolify",
        not choice.problems,
        "; ".join(choice.problems) or choice.size["slug"],
        hint="choose a size with 2 vCPU, 2 GB RAM and 30 GB disk or more (e.g. s-2vcpu-4gb)",
    )
    check(
        "at most one droplet has this name or tag",
        len(existing) <= 1,
        ", ".join(f"{d['id']} {d['name']}" for d in existing) or "none yet",
        hint="delete the extra droplets in the control panel, then re-run",
    )
    check.call(
        "allowed to create what is missing",
        lambda: require_paid_permission(existing, choice, allow_create_paid, dry_run),
        hint="set allow_create_paid = True to buy the droplet, or dry_run = True to see the plan",
    )


def create_droplet_once(
    client: Client,
    body: Mapping[str, Any],
    lookup: Callable[[], list[dict[str, Any]]],
    attempts: int = 3,
    settle: float = 7.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """``POST /v2/droplets`` without ever making a duplicate.

    A 5xx or a lost connection does not tell whether the droplet was created, so before
    each retry the droplet is looked up (by name and tag, for up to ``settle`` seconds: a new droplet
    may take a moment to be listed, so the reads come after 1, 2, 4 s); only when it is still absent is the
    POST repeated.
    """

    def listed() -> list[dict[str, Any]]:
        found = lookup()
        if len(found) > 1:
            raise Conflict(
                f"{len(found)} droplets named {body.get('name')!r} exist after a failed create",
                vendor=VENDOR,
                hint="delete the extra droplet(s) in the control panel, then re-run task 2.2",
            )
        return found

    last: ApiError | None = None
    for _ in range(attempts):
        try:
            return client.create_droplet(body)
        except (ServerError, Unreachable) as exc:
            last = exc
        try:
            what = f"droplet {body.get('name')!r} to be listed"
            found = poll.poll(
                listed, timeout=settle, interval=1.0, factor=2, what=what, sleep=sleep, clock=clock
            )
        except poll.PollTimeout:
            continue
        return found[0]
    assert last is not None
    raise last


def ensure_droplet(
    client: Client,
    spec: DropletSpec,
    key_fingerprint: str,
    *,
    allow_create_paid: bool = False,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[StepResult, dict[str, Any] | None]:
    step = f"droplet {spec.name!r}"
    existing = find_droplets(client, spec)
    if len(existing) > 1:
        ids = ", ".join(f"{d['id']} ({d['name']})" for d in existing)
        return steps.failed(
            step,
            f"{len(existing)} droplets have name {spec.name!r} or tag {spec.tag!r}: {ids}; "
            "delete the extra ones in the control panel, then re-run",
        ), None
    if existing:
        d = existing[0]
        notes = [
            f"{what} is {have} (parameter says {want})"
            for what, have, want in (
                ("name", d["name"], spec.name),
                ("region", d["region"]["slug"], spec.region),
                ("size", d.get("size_slug"), spec.size),
                ("image", (d.get("image") or {}).get("slug"), spec.image),
            )
            if have != want
        ]
        detail = f"exists (id {d['id']}, {d['status']})" + (f"; note: {'; '.join(notes)}" if notes else "")
        return steps.ok(step, detail), d
    body = spec.request_body(key_fingerprint or "<fingerprint of the key registered above>")
    diff = f"POST {client.base_url}/v2/droplets\n{json.dumps(body, indent=2)}"
    if dry_run:
        return steps.changed(step, "would create it", diff=diff, dry_run=True), None
    if not allow_create_paid:
        return steps.failed(step, "creating it costs money: set allow_create_paid=True"), None
    droplet = create_droplet_once(client, body, lambda: find_droplets(client, spec), sleep=sleep, clock=clock)
    return steps.changed(
        step, f"created (id {droplet['id']}, status {droplet['status']})", diff=diff
    ), droplet


def public_ipv4(droplet: Mapping[str, Any]) -> str | None:
    for net in (droplet.get("networks") or {}).get("v4") or []:
        if net.get("type") == "public" and net.get("ip_address"):
            return str(net["ip_address"])
    return None


def ssh_port(droplet: Mapping[str, Any]) -> int:
    """22 on DigitalOcean; the stand-in's droplet containers report their published port."""
    return int((droplet.get("x_rehearsal") or {}).get("ssh_port") or 22)


def wait_for_droplet(
    client: Client,
    droplet_id: int,
    timeout: float = 600.0,
    interval: float = 5.0,
    progress: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the droplet is ``active`` with a public IPv4; show each change of state.

    A droplet still ``new`` has its create action looked at every fifth read: an errored one ends the wait.
    """
    reads = [0]

    def read() -> dict[str, Any]:
        droplet = client.droplet(droplet_id)
        reads[0] += 1
        if droplet["status"] == "new" and reads[0] % 5 == 0:
            errored = [
                a
                for a in client.droplet_actions(droplet_id)
                if a.get("type") == "create" and a.get("status") == "errored"
            ]
            if errored:
                raise ApiError(
                    f"creating droplet {droplet_id} failed (action {errored[0]['id']} errored)",
                    vendor=VENDOR,
                    hint="delete the droplet in the control panel, then re-run task 2.2",
                )
        return droplet

    def describe(d: Mapping[str, Any]) -> str:
        return (
            f"droplet {d['name']} ({droplet_id}): status {d['status']}, public IPv4 {public_ipv4(d) or '—'}"
        )

    def explain(d: Mapping[str, Any]) -> str:
        return (
            f"droplet {droplet_id} is still {d['status']} (public IPv4 {public_ipv4(d) or 'none'}) after "
            f"{timeout:.0f}s; re-running task 2.2 resumes waiting (it never creates a second droplet)"
        )

    return poll.poll(
        read,
        until=lambda d: d["status"] == "active" and bool(public_ipv4(d)),
        timeout=timeout,
        interval=interval,
        what=f"droplet {droplet_id} to become active",
        on_attempt=poll.report_changes(progress, describe, clock),
        explain=explain,
        sleep=sleep,
        clock=clock,
    )


# --------------------------------------------------------------------------- task 2.2: the cloud firewall


def ensure_firewall(
    client: Client, spec: FirewallSpec, dry_run: bool = False
) -> tuple[StepResult, dict[str, Any] | None]:
    """Create the firewall (attached by tag) or bring its rules and tag in line; idempotent."""
    step = f"cloud firewall {spec.name!r} (inbound {', '.join(map(str, spec.ports))})"
    found = [f for f in client.firewalls() if f["name"] == spec.name]
    if len(found) > 1:
        return steps.failed(step, f"{len(found)} firewalls are named {spec.name!r}; delete the extras"), None
    want = spec.request_body()
    if not found:
        diff = f"POST {client.base_url}/v2/firewalls\n{json.dumps(want, indent=2)}"
        if dry_run:
            return steps.changed(step, "would create it", diff=diff, dry_run=True), None
        fw = client.create_firewall(want)
        return steps.changed(step, f"created (id {fw['id']}, {fw['status']})", diff=diff), fw
    fw = found[0]
    same_rules = normalized_rules(fw) == normalized_rules(want)
    has_tag = spec.tag in (fw.get("tags") or [])
    if same_rules and has_tag:
        return steps.ok(step, f"rules and tag as wanted (id {fw['id']}, {fw['status']})"), fw
    body = {
        **want,
        "droplet_ids": list(fw.get("droplet_ids") or []),
        "tags": sorted({*(fw.get("tags") or []), spec.tag}),
    }
    before = "\n".join(f"inbound tcp {p}" for p in open_inbound_ports(fw))
    after = "\n".join(f"inbound tcp {p}" for p in spec.ports)
    diff = _unified(before, after, "rules now", "rules wanted")
    if not has_tag:
        diff += f"\n+ attach to tag {spec.tag}"
    if dry_run:
        return steps.changed(
            step, "would update its rules/tags (PUT, full replacement)", diff=diff, dry_run=True
        ), fw
    fw = client.update_firewall(fw["id"], body)
    return steps.changed(step, f"updated (id {fw['id']}, {fw['status']})", diff=diff), fw


def _unified(before: str, after: str, a: str, b: str) -> str:
    return "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), a, b, lineterm=""))


def wait_for_firewall(
    client: Client,
    firewall_id: str,
    timeout: float = 300.0,
    interval: float = 3.0,
    progress: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until the firewall's rules are applied (``succeeded``); ``failed`` ends the wait."""

    def read() -> dict[str, Any]:
        fw = client.firewall(firewall_id)
        if fw["status"] == "failed":
            raise ApiError(
                f"firewall {fw['name']} failed to apply: {fw.get('pending_changes')}",
                vendor=VENDOR,
                hint="check the firewall in the control panel; re-run task 2.2",
            )
        return fw

    return poll.poll(
        read,
        until=lambda fw: fw["status"] == "succeeded",
        timeout=timeout,
        interval=interval,
        what=f"firewall {firewall_id} to apply",
        on_attempt=poll.report_changes(progress, lambda fw: f"firewall {fw['name']}: {fw['status']}", clock),
        explain=lambda fw: (
            f"firewall {fw['name']} still {fw['status']} after {timeout:.0f}s; re-run task 2.2"
        ),
        sleep=sleep,
        clock=clock,
    )


# --------------------------------------------------------------------------- task 2.2: verification


def check_droplet(
    check: Any,
    client: Client,
    spec: DropletSpec,
    fw_spec: FirewallSpec,
    recorded: Mapping[str, Any] | None = None,
    key_fingerprint: str = "",
) -> dict[str, Any] | None:
    """Re-read DigitalOcean's real state and record task 2.2's checks on ``check``."""
    matches = find_droplets(client, spec)
    check(
        "exactly one droplet has this name or tag",
        len(matches) == 1,
        ", ".join(f"{d['id']} {d['name']}" for d in matches) or "none",
        hint="none: run the creation cells (allow_create_paid=True); several: delete the extras",
    )
    if len(matches) != 1:
        return None
    d = client.droplet(matches[0]["id"])
    ip = public_ipv4(d)
    check(
        "droplet is active",
        d["status"] == "active",
        d["status"],
        hint="wait and re-run; see the control panel",
    )
    check(
        "droplet has a public IPv4", bool(ip), ip or "none", hint="wait until networking is assigned, re-run"
    )
    check(
        "region, size and image as asked",
        (d["region"]["slug"], d["size_slug"], (d.get("image") or {}).get("slug"))
        == (spec.region, spec.size, spec.image),
        f"{d['region']['slug']}, {d['size_slug']}, {(d.get('image') or {}).get('slug')}",
        hint="an existing droplet was kept as it is; resize or rebuild it by hand if it must change",
    )
    check(
        f"droplet carries tag {spec.tag!r}",
        spec.tag in d["tags"],
        ", ".join(d["tags"]),
        hint="add the tag in the control panel: the firewall is attached through it",
    )
    check(
        "monitoring agent requested",
        ("monitoring" in d.get("features", [])) == spec.monitoring,
        ", ".join(d.get("features", [])) or "no features",
        hint="monitoring is chosen at creation: enable it in the control panel or set monitoring to match",
    )
    fws = [f for f in client.firewalls() if f["name"] == fw_spec.name]
    check(
        "exactly one firewall with this name",
        len(fws) == 1,
        len(fws),
        hint="re-run task 2.2; delete duplicates",
    )
    if len(fws) == 1:
        fw = client.firewall(fws[0]["id"])
        ports = open_inbound_ports(fw)
        wanted = sorted(map(str, fw_spec.ports), key=lambda p: (len(p), p))
        check(
            "firewall opens exactly the wanted ports",
            ports == wanted,
            ", ".join(ports),
            hint=f"wanted {', '.join(wanted)}; re-run task 2.2 to update the rules",
        )
        check(
            f"firewall attached to tag {spec.tag!r}",
            spec.tag in (fw.get("tags") or []),
            fw.get("tags"),
            hint="re-run task 2.2",
        )
        check(
            "firewall rules applied (succeeded)",
            fw["status"] == "succeeded",
            fw["status"],
            hint="wait a minute and re-run the verification",
        )
    if key_fingerprint:
        check("our SSH key is registered (by fingerprint)", client.ssh_key(key_fingerprint) is not None,
              key_fingerprint, hint="re-run task 2.2: it registers the key")  # fmt: skip
    if recorded is not None:
        check(
            "state file records this droplet",
            recorded.get("id") == d["id"] and recorded.get("ipv4") == ip,
            f"{recorded.get('id')} {recorded.get('ipv4')}",
            hint="re-run the 'record' cell",
        )
    return d


def droplet_record(
    droplet: Mapping[str, Any],
    spec: DropletSpec,
    key: Mapping[str, Any] | None,
    key_fingerprint: str,
    firewall: Mapping[str, Any] | None,
    private_key: str | Path,
) -> dict[str, Any]:
    """What later tasks need (non-secret): ids, address, SSH port and key path."""
    return {
        "id": droplet["id"],
        "name": droplet["name"],
        "ipv4": public_ipv4(droplet),
        "ssh_port": ssh_port(droplet),
        "region": droplet["region"]["slug"],
        "size": droplet["size_slug"],
        "image": (droplet.get("image") or {}).get("slug"),
        "tag": spec.tag,
        "ssh_key_id": key["id"] if key else None,
        "ssh_key_fingerprint": key_fingerprint,
        "ssh_key_path": str(Path(private_key).expanduser()),
        "firewall_id": firewall["id"] if firewall else None,
        "firewall_ports": list(firewall_ports_of(firewall)) if firewall else [],
    }


def firewall_ports_of(firewall: Mapping[str, Any]) -> list[int]:
    return [int(p) for p in open_inbound_ports(firewall) if p.isdigit()]
