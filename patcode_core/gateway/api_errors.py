"""Every failure as the chat-completions API's error body (``{"error": {"message", "type", "param", "code"}}``) with the right status."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from patcode_core.errors import (
    AllProvidersFailedError,
    ConfigError,
    ErrorKind,
    PatCodeError,
    ProviderError,
    StreamInterruptedError,
    UsageError,
)
from patcode_core.i18n import t

#: Kinds that say the request itself cannot be served anywhere (the client's fault): 400.
_REQUEST_KINDS = {ErrorKind.BAD_REQUEST, ErrorKind.CONTEXT_LENGTH, ErrorKind.CONTENT_FILTER}
_RATE_KINDS = {ErrorKind.RATE_LIMIT, ErrorKind.QUOTA_EXHAUSTED}
#: Kinds where no provider was there to ask: 503 (anything else that failed is a bad gateway, 502).
_UNAVAILABLE_KINDS = {ErrorKind.NOT_CONFIGURED, ErrorKind.CIRCUIT_OPEN, ErrorKind.UNREACHABLE, ErrorKind.CONNECTION}
_TIMEOUT_KINDS = {ErrorKind.TIMEOUT, ErrorKind.DEADLINE}


@dataclass
class ApiError(Exception):
    """One error answer of the gateway.

    :param status: the HTTP status.
    :param message: one readable text naming the cause and the fix (already free of secrets).
    :param type: the chat-completions API's error ``type`` (``invalid_request_error``, ``server_error``...).
    :param code: the chat-completions API's error ``code`` (``model_not_found``, ``rate_limit_exceeded``...).
    :param param: the request field at fault, when one is.
    :param headers: extra response headers (``Retry-After``).
    :param failures: each provider's failure, when providers were tried.
    """

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """The JSON body, in the chat-completions API's shape (``failures`` is PatCode's addition)."""
        error: dict[str, Any] = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        if self.failures:
            error["failures"] = self.failures
        return {"error": error}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """A 400 about the request's ``param``."""
    return ApiError(400, message, param=param, code=code)


def _failure(error: ProviderError) -> dict[str, Any]:
    return {"provider": error.provider, "model": error.model, "kind": error.kind.value, "message": str(error)}


def _retry_after(errors: list[ProviderError]) -> dict[str, str]:
    waits = [error.retry_after for error in errors if error.retry_after is not None and math.isfinite(error.retry_after)]
    return {"Retry-After": str(max(1, math.ceil(min(waits)))) if waits else "1"}


def _from_provider_errors(errors: list[ProviderError], message: str) -> ApiError:
    """The status a set of provider failures deserves (the skipped for lack of a key decide only when alone)."""
    failures = [_failure(error) for error in errors]
    deciding = [error for error in errors if error.kind is not ErrorKind.NOT_CONFIGURED] or errors
    kinds = {error.kind for error in deciding}
    if kinds <= _RATE_KINDS:
        quota = kinds == {ErrorKind.QUOTA_EXHAUSTED}
        return ApiError(429, message, "insufficient_quota" if quota else "requests",
                        "insufficient_quota" if quota else "rate_limit_exceeded", headers=_retry_after(deciding),
                        failures=failures)
    if kinds <= _REQUEST_KINDS:
        code = "context_length_exceeded" if kinds == {ErrorKind.CONTEXT_LENGTH} else next(iter(kinds)).value
        return ApiError(400, message, "invalid_request_error", code, param="messages", failures=failures)
    if kinds == {ErrorKind.MODEL_NOT_FOUND}:
        return ApiError(404, message, "invalid_request_error", "model_not_found", param="model", failures=failures)
    if kinds <= _TIMEOUT_KINDS:
        return ApiError(504, message, "server_error", "timeout", failures=failures)
    if kinds <= _UNAVAILABLE_KINDS | _TIMEOUT_KINDS:
        return ApiError(503, message, "server_error", "no_provider_available", failures=failures)
    return ApiError(502, message, "server_error", "provider_error", failures=failures)


def from_exception(exc: BaseException) -> ApiError:
    """The error answer for anything a call raised (an unexpected one is a 500 that says so, never a traceback)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AllProvidersFailedError):
        return _from_provider_errors(list(exc.failures), str(exc))
    if isinstance(exc, ProviderError):
        return _from_provider_errors([exc], str(exc))
    if isinstance(exc, StreamInterruptedError):  # only ever mid-stream: the SSE error event
        return ApiError(502, str(exc), "server_error", "stream_interrupted", failures=[_failure(e) for e in exc.failures])
    if isinstance(exc, UsageError | ConfigError):
        return bad_request(str(exc))
    if isinstance(exc, PatCodeError):
        return ApiError(400, str(exc))
    return ApiError(500, t("gateway.unexpected", error=type(exc).__name__), "server_error", "internal_error")
