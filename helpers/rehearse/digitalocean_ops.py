"""The DigitalOcean stand-in's operations routes: uptime checks and alerts, monitoring alert policies.

Mixed into :class:`helpers.rehearse.digitalocean.DigitalOceanStandIn` (the operations notebooks'
``monitoring`` and ``teardown``). Along ``specification/resources/uptime`` and ``.../monitoring`` of the
DigitalOcean subset in ``shared/refs`` (commit 7c1300c4):

* ``GET|POST /v2/uptime/checks`` (201 ``{check}``), ``GET|PUT|DELETE /v2/uptime/checks/{check_id}`` (204 on
  delete, which also deletes the check's alerts), ``GET /v2/uptime/checks/{check_id}/state``;
* ``GET|POST /v2/uptime/checks/{check_id}/alerts`` (201 ``{alert}``),
  ``GET|PUT|DELETE .../alerts/{alert_id}``;
* ``GET|POST /v2/monitoring/alerts`` (``POST`` answers **200** ``{policy}``, as the description says),
  ``GET|PUT|DELETE /v2/monitoring/alerts/{alert_uuid}``.

Validation follows the models: check ``type`` in ``ping|http|https`` (the target's scheme must match an
http/https type), ``regions`` from ``us_east|us_west|eu_west|se_asia``; alert ``type`` in
``latency|down|down_global|ssl_expiry``, ``period`` in ``2m..1h``, ``comparison``, and ``notifications``
with both ``email`` and ``slack`` arrays; an alert's emails must be verified on the account (the
description: "The Email has to be one that is verified on that DigitalOcean account"; here: the account's
email). Alert policies: the required fields of ``alert_policy_request``, ``compare``/``window``/``type``
enums, ``entities`` that are droplets of the account and ``tags`` that exist. Errors are 422
``unprocessable_entity`` naming the field, 404 ``not_found``.

A check's state is measured: the stand-in requests the target (an http(s) GET, a TCP connection for
``ping``) when the state is read, so ``UP``/``DOWN`` is what the target really answers from this machine.
The create request of a check carries no ``method`` although the description lists it as required: the
API's own examples (``examples/curl/check_create.yml``, ``examples/python/check_create.yml``) send none.
"""

from __future__ import annotations

import copy
import socket
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from helpers.rehearse.base import HTTPError, Request, Response, empty_response, json_response

CHECK_TYPES = ("ping", "http", "https")
CHECK_REGIONS = ("us_east", "us_west", "eu_west", "se_asia")
ALERT_TYPES = ("latency", "down", "down_global", "ssl_expiry")
ALERT_PERIODS = ("2m", "3m", "5m", "10m", "15m", "30m", "1h")
COMPARISONS = ("greater_than", "less_than")
POLICY_COMPARE = ("GreaterThan", "LessThan")
POLICY_WINDOWS = ("5m", "10m", "30m", "1h")
POLICY_TYPES = (
    "v1/insights/droplet/load_1",
    "v1/insights/droplet/load_5",
    "v1/insights/droplet/load_15",
    "v1/insights/droplet/memory_utilization_percent",
    "v1/insights/droplet/disk_utilization_percent",
    "v1/insights/droplet/cpu",
    "v1/insights/droplet/disk_read",
    "v1/insights/droplet/disk_write",
    "v1/insights/droplet/public_outbound_bandwidth",
    "v1/insights/droplet/public_inbound_bandwidth",
    "v1/insights/droplet/private_outbound_bandwidth",
    "v1/insights/droplet/private_inbound_bandwidth",
)  # the droplet types of the description's enum (the runbook has no load balancer or managed database)

SCOPES: dict[tuple[str, str], str] = {
    ("GET", "/v2/uptime/checks"): "uptime:read",
    ("POST", "/v2/uptime/checks"): "uptime:create",
    ("GET", "/v2/uptime/checks/{check_id}"): "uptime:read",
    ("PUT", "/v2/uptime/checks/{check_id}"): "uptime:update",
    ("DELETE", "/v2/uptime/checks/{check_id}"): "uptime:delete",
    ("GET", "/v2/uptime/checks/{check_id}/state"): "uptime:read",
    ("GET", "/v2/uptime/checks/{check_id}/alerts"): "uptime:read",
    ("POST", "/v2/uptime/checks/{check_id}/alerts"): "uptime:create",
    ("GET", "/v2/uptime/checks/{check_id}/alerts/{alert_id}"): "uptime:read",
    ("PUT", "/v2/uptime/checks/{check_id}/alerts/{alert_id}"): "uptime:update",
    ("DELETE", "/v2/uptime/checks/{check_id}/alerts/{alert_id}"): "uptime:delete",
    ("GET", "/v2/monitoring/alerts"): "monitoring:read",
    ("POST", "/v2/monitoring/alerts"): "monitoring:create",
    ("GET", "/v2/monitoring/alerts/{alert_uuid}"): "monitoring:read",
    ("PUT", "/v2/monitoring/alerts/{alert_uuid}"): "monitoring:update",
    ("DELETE", "/v2/monitoring/alerts/{alert_uuid}"): "monitoring:delete",
}


def _fail(message: str) -> HTTPError:
    return HTTPError(422, message, "unprocessable_entity")


def _not_found() -> HTTPError:
    return HTTPError(404, "The resource you requested could not be found.", "not_found")


def probe_target(kind: str, target: str, timeout: float = 3.0) -> bool:
    """Does the target answer from here? http(s): any HTTP status below 500; ping: a TCP connection."""
    parts = urlsplit(target if "://" in target else f"//{target}")
    host = parts.hostname or ""
    if kind == "ping":
        try:
            with socket.create_connection((host, parts.port or 80), timeout=timeout):
                return True
        except OSError:
            return False
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(target, timeout=timeout) as answer:  # the check's own target
            return answer.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


class DigitalOceanOperations:
    """Routes and state of uptime checks and alert policies (a mixin of the DigitalOcean stand-in)."""

    # provided by DigitalOceanStandIn
    add_route: Any
    account: dict[str, Any]
    droplets: dict[int, dict[str, Any]]
    tags: dict[str, dict[str, Any]]
    clock: Any
    _body: Any
    _page: Any
    _canonical_tag: Any

    def _init_operations(self) -> None:
        self.uptime_checks: dict[str, dict[str, Any]] = {}
        self.uptime_alerts: dict[str, dict[str, Any]] = {}  # alert id -> alert (with its check id inside)
        self.alert_policies: dict[str, dict[str, Any]] = {}
        self._check_states: dict[str, dict[str, Any]] = {}

    def _register_operations(self) -> None:
        r = self.add_route
        r("GET", "/v2/uptime/checks", self._list_checks)
        r("POST", "/v2/uptime/checks", self._create_check)
        r("GET", "/v2/uptime/checks/{check_id}", self._get_check)
        r("PUT", "/v2/uptime/checks/{check_id}", self._update_check)
        r("DELETE", "/v2/uptime/checks/{check_id}", self._delete_check)
        r("GET", "/v2/uptime/checks/{check_id}/state", self._check_state)
        r("GET", "/v2/uptime/checks/{check_id}/alerts", self._list_alerts)
        r("POST", "/v2/uptime/checks/{check_id}/alerts", self._create_alert)
        r("GET", "/v2/uptime/checks/{check_id}/alerts/{alert_id}", self._get_alert)
        r("PUT", "/v2/uptime/checks/{check_id}/alerts/{alert_id}", self._update_alert)
        r("DELETE", "/v2/uptime/checks/{check_id}/alerts/{alert_id}", self._delete_alert)
        r("GET", "/v2/monitoring/alerts", self._list_policies)
        r("POST", "/v2/monitoring/alerts", self._create_policy)
        r("GET", "/v2/monitoring/alerts/{alert_uuid}", self._get_policy)
        r("PUT", "/v2/monitoring/alerts/{alert_uuid}", self._update_policy)
        r("DELETE", "/v2/monitoring/alerts/{alert_uuid}", self._delete_policy)

    # ---------------------------------------------------------------- uptime checks

    def _validate_check(self, body: dict[str, Any], required: bool) -> dict[str, Any]:
        wanted = ("name", "target", "regions", "type", "enabled") if required else ()
        for key in wanted:
            if key not in body:
                raise _fail(f"{key} is required")
        out: dict[str, Any] = {}
        if "name" in body:
            if not isinstance(body["name"], str) or not body["name"].strip():
                raise _fail("name must be a non-empty string")
            out["name"] = body["name"]
        if "type" in body:
            if body["type"] not in CHECK_TYPES:
                raise _fail(f"type must be one of {', '.join(CHECK_TYPES)}; got {body['type']!r}")
            out["type"] = body["type"]
        if "target" in body:
            target = body["target"]
            if not isinstance(target, str) or not target.strip():
                raise _fail("target must be the endpoint to check (a URL)")
            out["target"] = target
        if "regions" in body:
            regions = body["regions"]
            if not isinstance(regions, list) or not regions or any(r not in CHECK_REGIONS for r in regions):
                raise _fail(f"regions must be a non-empty array of {', '.join(CHECK_REGIONS)}")
            out["regions"] = list(dict.fromkeys(regions))
        if "enabled" in body:
            if not isinstance(body["enabled"], bool):
                raise _fail("enabled must be a boolean")
            out["enabled"] = body["enabled"]
        return out

    def _check_target_matches_type(self, check: dict[str, Any]) -> None:
        scheme = urlsplit(check["target"]).scheme
        if check["type"] in ("http", "https") and scheme != check["type"]:
            raise _fail(
                f"target {check['target']!r} does not match type {check['type']!r} "
                f"(an {check['type']}:// URL)"
            )

    def _check(self, check_id: str) -> dict[str, Any]:
        check = self.uptime_checks.get(check_id)
        if check is None:
            raise _not_found()
        return check

    def _list_checks(self, request: Request) -> Response:
        return self._page(request, "checks", [copy.deepcopy(c) for c in self.uptime_checks.values()])

    def _create_check(self, request: Request) -> Response:
        fields = self._validate_check(self._body(request), required=True)
        check = {"id": str(uuid.uuid4()), **fields}
        self._check_target_matches_type(check)
        self.uptime_checks[check["id"]] = check
        return json_response({"check": copy.deepcopy(check)}, 201)

    def _get_check(self, request: Request) -> Response:
        return json_response({"check": copy.deepcopy(self._check(request.params["check_id"]))})

    def _update_check(self, request: Request) -> Response:
        check = self._check(request.params["check_id"])
        candidate = {**check, **self._validate_check(self._body(request), required=False)}
        self._check_target_matches_type(candidate)
        check.update(candidate)
        return json_response({"check": copy.deepcopy(check)})

    def _delete_check(self, request: Request) -> Response:
        check = self._check(request.params["check_id"])
        del self.uptime_checks[check["id"]]
        self._check_states.pop(check["id"], None)
        for alert_id in [a for a, alert in self.uptime_alerts.items() if alert["_check"] == check["id"]]:
            del self.uptime_alerts[alert_id]
        return empty_response()

    def _check_state(self, request: Request) -> Response:
        check = self._check(request.params["check_id"])
        now = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        up = check.get("enabled", True) and probe_target(check["type"], check["target"])
        status = "UP" if up else "DOWN" if check.get("enabled", True) else "CHECKING"
        memory = self._check_states.setdefault(check["id"], {})
        regions = {}
        for region in check["regions"]:
            last = memory.get(region)
            if last is None or last["status"] != status:
                memory[region] = {"status": status, "status_changed_at": now}
            regions[region] = {
                "status": status,
                "status_changed_at": memory[region]["status_changed_at"],
                "thirty_day_uptime_percentage": 100.0 if up else 0.0,
            }
        return json_response({"state": {"regions": regions}})

    # ---------------------------------------------------------------- uptime alerts

    def _validate_notifications(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict) or "email" not in value or "slack" not in value:
            raise _fail(f"{where} must hold both email and slack arrays (an empty array for none)")
        emails, slack = value["email"], value["slack"]
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise _fail(f"{where}.email must be an array of email addresses")
        if not isinstance(slack, list) or not all(
            isinstance(s, dict) and isinstance(s.get("url"), str) and isinstance(s.get("channel"), str)
            for s in slack
        ):
            raise _fail(f"{where}.slack must be an array of {{url, channel}} objects")
        verified = (
            {str(self.account.get("email", "")).lower()} if self.account.get("email_verified") else set()
        )
        for email in emails:
            if email.lower() not in verified:
                raise _fail(f"{where}.email: {email} is not a verified email of this account")
        return {"email": list(emails), "slack": copy.deepcopy(slack)}

    def _validate_alert(self, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("name", "type", "notifications", "period"):
            if key not in body:
                raise _fail(f"{key} is required")
        if not isinstance(body["name"], str) or not body["name"].strip():
            raise _fail("name must be a non-empty string")
        if body["type"] not in ALERT_TYPES:
            raise _fail(f"type must be one of {', '.join(ALERT_TYPES)}; got {body['type']!r}")
        if body["period"] not in ALERT_PERIODS:
            raise _fail(f"period must be one of {', '.join(ALERT_PERIODS)}; got {body['period']!r}")
        out = {
            "name": body["name"],
            "type": body["type"],
            "period": body["period"],
            "notifications": self._validate_notifications(body["notifications"], "notifications"),
        }
        if body["type"] in ("latency", "ssl_expiry") and "threshold" not in body:
            raise _fail(f"threshold is required for a {body['type']} alert")
        if "threshold" in body:
            if isinstance(body["threshold"], bool) or not isinstance(body["threshold"], int):
                raise _fail("threshold must be an integer")
            out["threshold"] = body["threshold"]
        if "comparison" in body:
            if body["comparison"] not in COMPARISONS:
                raise _fail(f"comparison must be one of {', '.join(COMPARISONS)}")
            out["comparison"] = body["comparison"]
        return out

    def _alert(self, check_id: str, alert_id: str) -> dict[str, Any]:
        alert = self.uptime_alerts.get(alert_id)
        if alert is None or alert["_check"] != check_id:
            raise _not_found()
        return alert

    @staticmethod
    def _alert_view(alert: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in alert.items() if not k.startswith("_")}

    def _list_alerts(self, request: Request) -> Response:
        check = self._check(request.params["check_id"])
        items = [self._alert_view(a) for a in self.uptime_alerts.values() if a["_check"] == check["id"]]
        return self._page(request, "alerts", items)

    def _create_alert(self, request: Request) -> Response:
        check = self._check(request.params["check_id"])
        alert = {"id": str(uuid.uuid4()), **self._validate_alert(self._body(request)), "_check": check["id"]}
        self.uptime_alerts[alert["id"]] = alert
        return json_response({"alert": self._alert_view(alert)}, 201)

    def _get_alert(self, request: Request) -> Response:
        alert = self._alert(request.params["check_id"], request.params["alert_id"])
        return json_response({"alert": self._alert_view(alert)})

    def _update_alert(self, request: Request) -> Response:
        alert = self._alert(request.params["check_id"], request.params["alert_id"])
        fields = self._validate_alert(self._body(request))
        for key in ("threshold", "comparison"):
            alert.pop(key, None)
        alert.update(fields)
        return json_response({"alert": self._alert_view(alert)})

    def _delete_alert(self, request: Request) -> Response:
        alert = self._alert(request.params["check_id"], request.params["alert_id"])
        del self.uptime_alerts[alert["id"]]
        return empty_response()

    # ---------------------------------------------------------------- monitoring alert policies

    def _validate_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        required = (
            "type",
            "description",
            "compare",
            "value",
            "window",
            "entities",
            "tags",
            "alerts",
            "enabled",
        )
        for key in required:
            if key not in body:
                raise _fail(f"{key} is required")
        if body["type"] not in POLICY_TYPES:
            raise _fail(f"type {body['type']!r} is not a droplet alert type ({', '.join(POLICY_TYPES)})")
        if not isinstance(body["description"], str) or not body["description"].strip():
            raise _fail("description must be a non-empty string")
        if body["compare"] not in POLICY_COMPARE:
            raise _fail(f"compare must be one of {', '.join(POLICY_COMPARE)}")
        if isinstance(body["value"], bool) or not isinstance(body["value"], int | float):
            raise _fail("value must be a number")
        if body["window"] not in POLICY_WINDOWS:
            raise _fail(f"window must be one of {', '.join(POLICY_WINDOWS)}")
        if not isinstance(body["enabled"], bool):
            raise _fail("enabled must be a boolean")
        entities, tags = body["entities"], body["tags"]
        if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
            raise _fail("entities must be an array of droplet ids (strings)")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise _fail("tags must be an array of tag names")
        for entity in entities:
            if not entity.isdigit() or int(entity) not in self.droplets:
                raise _fail(f"entities: {entity!r} is not a droplet of this account")
        for tag in tags:
            if self._canonical_tag(tag) is None:
                raise _fail(f"tags: tag {tag!r} does not exist")
        return {
            "type": body["type"],
            "description": body["description"],
            "compare": body["compare"],
            "value": body["value"],
            "window": body["window"],
            "entities": list(entities),
            "tags": [self._canonical_tag(t) for t in tags],
            "alerts": self._validate_notifications(body["alerts"], "alerts"),
            "enabled": body["enabled"],
        }

    def _policy(self, policy_uuid: str) -> dict[str, Any]:
        policy = self.alert_policies.get(policy_uuid)
        if policy is None:
            raise _not_found()
        return policy

    def _list_policies(self, request: Request) -> Response:
        return self._page(request, "policies", [copy.deepcopy(p) for p in self.alert_policies.values()])

    def _create_policy(self, request: Request) -> Response:
        policy = {"uuid": str(uuid.uuid4()), **self._validate_policy(self._body(request))}
        self.alert_policies[policy["uuid"]] = policy
        return json_response({"policy": copy.deepcopy(policy)})  # 200, as the description says

    def _get_policy(self, request: Request) -> Response:
        return json_response({"policy": copy.deepcopy(self._policy(request.params["alert_uuid"]))})

    def _update_policy(self, request: Request) -> Response:
        policy = self._policy(request.params["alert_uuid"])
        policy.update(self._validate_policy(self._body(request)))
        return json_response({"policy": copy.deepcopy(policy)})

    def _delete_policy(self, request: Request) -> Response:
        policy = self._policy(request.params["alert_uuid"])
        del self.alert_policies[policy["uuid"]]
        return empty_response()
