"""One family of errors for every vendor API the runbook calls (DigitalOcean, Coolify, GitHub).

A vendor client turns an error answer into one of these kinds, with the vendor's own words in the
message and the next step in ``hint``:

=====================  =================================================================================
:class:`Unauthorized`  401: the token is missing, mistyped, expired or revoked
:class:`Forbidden`     403: the token lacks a scope or permission (or the vendor refuses this caller)
:class:`NotFound`      404 (and Coolify's 405): no such resource, or the token cannot see it
:class:`Conflict`      409: it exists already
:class:`InvalidRequest` 400 / 422: a field was refused (``field`` names it, ``errors`` lists each
                       field's complaints when the vendor says them); also a request the runbook refuses
                       to send (a malformed repository name)
:class:`RateLimited`   429 (or a rate-limit 403) that outlasted the retries
:class:`ServerError`   5xx: the vendor's side; a POST may or may not have been processed
:class:`Unreachable`   no HTTP answer at all (DNS, refused connection, timeout)
=====================  =================================================================================

What only one vendor has subclasses one of these in that vendor's client module (Coolify's
``ApiDisabled`` is a :class:`Forbidden`, its ``UnsupportedVersion`` an :class:`ApiError`). Code that
does not care about the kind catches :class:`ApiError`; ``vendor`` says whose API answered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class ApiError(RuntimeError):
    """A vendor API answered an error (or could not be reached). ``hint`` is the next step."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str = "",
        status: int = 0,
        method: str = "",
        path: str = "",
        hint: str = "",
        error_id: str = "",
        request_id: str = "",
        field: str | None = None,
        errors: Mapping[str, Sequence[str] | str] | None = None,
    ):
        self.vendor = vendor
        self.status = status
        self.api_message = message
        self.method = method
        self.path = path
        self.hint = hint
        self.error_id = error_id
        self.request_id = request_id
        self.field = field
        self.errors = {
            k: list(v) if isinstance(v, list | tuple) else [str(v)] for k, v in (errors or {}).items()
        }
        head = f"{vendor} {method} {path}".strip()
        if status and (method or path):
            head += f" answered {status}" + (f" {error_id}" if error_id else "")
        text = f"{head}: {message}" if head else message
        if request_id:
            text += f" (request id {request_id}: quote it to {vendor or 'the vendor'} support)"
        for name, complaints in self.errors.items():
            text += f"\n  {name}: {'; '.join(complaints)}"
        if hint:
            text += f"\nnext step: {hint}"
        super().__init__(text)


class Unauthorized(ApiError):
    """401: the token is missing, mistyped, expired or revoked."""


class Forbidden(ApiError):
    """403: the token lacks a scope or permission, or the vendor refuses this caller."""


class NotFound(ApiError):
    """404: no such resource (or the token cannot see it)."""


class Conflict(ApiError):
    """409: it exists already."""


class InvalidRequest(ApiError):
    """400 / 422: a field was refused (``field`` / ``errors`` say which), or a request not worth sending."""


class RateLimited(ApiError):
    """429 (or a rate-limit 403) that outlasted the retries."""


class ServerError(ApiError):
    """5xx: the vendor's side; a POST may or may not have been processed."""


class Unreachable(ApiError):
    """No HTTP answer at all (DNS, refused connection, timeout)."""


__all__ = [
    "ApiError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "Unreachable",
]
