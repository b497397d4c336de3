"""One error family for everything a user can meet, each carrying its cure.

Every provider failure becomes a :class:`ProviderError` whose ``kind`` says what
went wrong and, through :data:`POLICY`, whether the manager may fall back to
the next provider. The message and suggestion are already in the user's
language and never contain a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorKind(StrEnum):
    """What failed, independent of the provider that reported it."""

    NOT_CONFIGURED = "not_configured"
    AUTHENTICATION = "authentication"
    MODEL_NOT_FOUND = "model_not_found"
    ENDPOINT_NOT_FOUND = "endpoint_not_found"
    RATE_LIMIT = "rate_limit"
    QUOTA_EXHAUSTED = "quota_exhausted"
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"
    BAD_REQUEST = "bad_request"
    SERVER_ERROR = "server_error"
    UNREACHABLE = "unreachable"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    MALFORMED_RESPONSE = "malformed_response"
    PLUGIN_ERROR = "plugin_error"
    CIRCUIT_OPEN = "circuit_open"
    DEADLINE = "deadline"


@dataclass(frozen=True, slots=True)
class Policy:
    """How the manager treats one kind of error.

    :param fallback: another provider may answer the same request.
    :param retryable: the same provider may answer if asked again shortly.
    :param trips_breaker: it says the provider is unwell, so it counts
        towards opening the circuit (the request's own faults do not).
    """

    fallback: bool
    retryable: bool
    trips_breaker: bool


#: The fallback table of the documentation (docs/errores.md), one row per kind.
POLICY: dict[ErrorKind, Policy] = {
    ErrorKind.NOT_CONFIGURED: Policy(fallback=True, retryable=False, trips_breaker=False),
    ErrorKind.AUTHENTICATION: Policy(fallback=True, retryable=False, trips_breaker=True),
    ErrorKind.MODEL_NOT_FOUND: Policy(fallback=True, retryable=False, trips_breaker=True),
    ErrorKind.ENDPOINT_NOT_FOUND: Policy(fallback=True, retryable=False, trips_breaker=True),
    ErrorKind.RATE_LIMIT: Policy(fallback=True, retryable=True, trips_breaker=False),
    ErrorKind.QUOTA_EXHAUSTED: Policy(fallback=True, retryable=False, trips_breaker=True),
    ErrorKind.CONTEXT_LENGTH: Policy(fallback=True, retryable=False, trips_breaker=False),
    ErrorKind.CONTENT_FILTER: Policy(fallback=False, retryable=False, trips_breaker=False),
    ErrorKind.BAD_REQUEST: Policy(fallback=False, retryable=False, trips_breaker=False),
    ErrorKind.SERVER_ERROR: Policy(fallback=True, retryable=True, trips_breaker=True),
    ErrorKind.UNREACHABLE: Policy(fallback=True, retryable=False, trips_breaker=True),
    ErrorKind.CONNECTION: Policy(fallback=True, retryable=True, trips_breaker=True),
    ErrorKind.TIMEOUT: Policy(fallback=True, retryable=False, trips_breaker=True),
    ErrorKind.MALFORMED_RESPONSE: Policy(fallback=True, retryable=True, trips_breaker=True),
    ErrorKind.PLUGIN_ERROR: Policy(fallback=True, retryable=False, trips_breaker=True),
    ErrorKind.CIRCUIT_OPEN: Policy(fallback=True, retryable=False, trips_breaker=False),
    ErrorKind.DEADLINE: Policy(fallback=False, retryable=False, trips_breaker=False),
}


class PatCodeError(Exception):
    """Base of every error PatCode shows to a user: its text is the whole story."""

    def __init__(self, message: str, suggestion: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.suggestion = suggestion

    def __str__(self) -> str:
        if not self.suggestion:
            return self.message
        return f"{self.message.rstrip('.')}. {self.suggestion}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigError(PatCodeError):
    """A setting has a value PatCode cannot use (names the variable and the fix)."""


class UsageError(PatCodeError):
    """The caller's input cannot be used: an empty prompt, text that is not valid UTF-8, a bad message list."""


class ProviderError(PatCodeError):
    """A provider could not answer.

    :param provider: the provider's short name (``acme``).
    :param kind: what failed; decides fallback through :data:`POLICY`.
    :param message: one human sentence, no secret in it.
    :param suggestion: what the user can do next.
    :param status_code: the HTTP status, when there was one.
    :param retry_after: seconds the provider asked us to wait, when it said.
    :param model: the model the request was for, when known.
    """

    def __init__(
        self,
        provider: str,
        kind: ErrorKind,
        message: str,
        suggestion: str = "",
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(message, suggestion)
        self.provider = provider
        self.kind = ErrorKind(kind)
        self.status_code = status_code
        self.retry_after = retry_after
        self.model = model
        #: Which try on this provider it was (1 = first), set by the manager.
        self.attempt = 1
        #: True when no request was sent (skipped: no key, circuit open, rate limit).
        self.skipped = False

    @property
    def fallback(self) -> bool:
        """True when another provider may well answer this request."""
        return POLICY[self.kind].fallback

    @property
    def retryable(self) -> bool:
        """True when the same provider may answer if asked again later."""
        return POLICY[self.kind].retryable

    @property
    def trips_breaker(self) -> bool:
        """True when this failure says the provider itself is unwell."""
        return POLICY[self.kind].trips_breaker

    def __repr__(self) -> str:
        return f"ProviderError(provider={self.provider!r}, kind={self.kind.value!r}, message={self.message!r})"


class AllProvidersFailedError(PatCodeError):
    """Every provider in the route failed; lists each failure and its cure."""

    def __init__(self, failures: list[ProviderError], message: str, details: str) -> None:
        super().__init__(message)
        self.failures = failures
        self.details = details

    def __str__(self) -> str:
        return f"{self.message}\n{self.details}"


class StreamInterruptedError(PatCodeError):
    """A streamed answer broke after text was shown and was not (or could not be) restarted.

    :param provider: the provider whose stream broke.
    :param partial_text: what had arrived; never passed off as a whole answer.
    :param failures: every failure of the call, the break included.
    """

    def __init__(
        self, provider: str, partial_text: str, failures: tuple[ProviderError, ...], message: str, suggestion: str = ""
    ) -> None:
        super().__init__(message, suggestion)
        self.provider = provider
        self.partial_text = partial_text
        self.failures = failures
