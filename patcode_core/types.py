"""The values that travel between the core, the plugins and the caller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from patcode_core.errors import ErrorKind, ProviderError
    from patcode_core.provider_settings import ProviderSettings
    from patcode_core.routing.ratelimit import RateLimitHeaders


#: The finish reasons a plugin reports (``ProviderReply.finish_reason``, ``StreamChunk.finish_reason``),
#: in the chat-completions words. Translate the provider's own: the truncation warning and the
#: cache (which never keeps a cut answer) read them.
FINISH_STOP = "stop"
FINISH_LENGTH = "length"
FINISH_CONTENT_FILTER = "content_filter"
FINISH_TOOL_CALLS = "tool_calls"


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message: ``role`` is ``system``, ``user`` or ``assistant``."""

    role: str
    content: str

    def as_dict(self) -> dict[str, str]:
        """The message as the chat APIs spell it."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a provider counted for one request (``None`` when it did not say)."""

    input_tokens: int | None = None
    output_tokens: int | None = None

    def merged(self, later: Usage | None) -> Usage:
        """These counts updated by a later chunk's: a count it gives replaces ours, a ``None`` keeps ours.

        Streams send counts in pieces (input tokens first, output tokens at the
        end): merging keeps both.
        """
        if later is None:
            return self
        return Usage(
            later.input_tokens if later.input_tokens is not None else self.input_tokens,
            later.output_tokens if later.output_tokens is not None else self.output_tokens,
        )

    @property
    def total_tokens(self) -> int | None:
        """Input plus output, when both are known."""
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens


#: The key of a price table that prices every model (``{"*": Price(0, 0, "local")}``).
ANY_MODEL = "*"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens, and when that price was read (``YYYY-MM-DD``, or ``LLM_PRICES``)."""

    input_per_million: float
    output_per_million: float
    as_of: str = ""

    def cost(self, usage: Usage) -> float | None:
        """The cost of ``usage``; ``None`` when the provider did not count the tokens (unless the model is free)."""
        if self.input_per_million == 0 and self.output_per_million == 0:
            return 0.0  # a free model (a local server) costs 0 whether or not it counted its tokens
        if usage.input_tokens is None or usage.output_tokens is None:
            return None
        return (usage.input_tokens * self.input_per_million + usage.output_tokens * self.output_per_million) / 1_000_000


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What the core asks a provider to complete."""

    messages: tuple[Message, ...]
    model: str
    temperature: float
    max_tokens: int
    #: The conversation this turn belongs to (for the usage history), if any.
    conversation: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderReply:
    """What a plugin's ``provider_complete`` returns.

    ``finish_reason`` uses the chat-completions words where they apply
    (``stop``, ``length``, ``content_filter``, ``tool_calls``); ``extra`` holds
    provider-specific figures (queue times, load durations).
    """

    text: str
    model: str | None = None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CompletionResult:
    """The answer the manager hands back, with who served it and how fast."""

    text: str
    provider: str
    model: str
    finish_reason: str | None
    usage: Usage
    latency: float
    failures: tuple[ProviderError, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Requests sent to the provider that answered (1 unless it was retried).
    attempts: int = 1
    #: Seconds from sending the request to the first token (streams only).
    time_to_first_token: float | None = None
    #: Partial answers thrown away because their stream broke (streams only).
    restarts: tuple[StreamRestarted, ...] = ()
    #: USD this answer cost; ``None`` when the price or the token counts are unknown.
    cost: float | None = None
    #: True when the answer came from PatCode's cache (it cost nothing).
    cached: bool = False

    @property
    def fallback_from(self) -> str | None:
        """The first other provider that failed or was skipped before this one answered, if any."""
        return next((f.provider for f in self.failures if f.provider != self.provider), None)

    @property
    def truncated(self) -> bool:
        """True when the provider stopped at the token limit, not at the end."""
        return self.finish_reason == "length"


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """An answer as the response cache keeps it."""

    text: str
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    model: str | None


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a streamed answer, as a plugin's ``provider_stream`` yields it.

    :param text: new answer text (may be empty).
    :param finish_reason: set on the chunk that says why the answer ended.
    :param usage: token counts, when this chunk carries them; merged into the
        answer's counts field by field (a count replaces the one before, ``None``
        keeps it), so input tokens may come first and output tokens last.
    :param model: the model that answers, when the chunk names it.
    :param done: True on the provider's own end marker (``data: [DONE]``,
        ``"done": true``). A stream that stops before it is treated as broken.
    :param skipped: why an unreadable chunk was skipped (logged as a warning).
    :param extra: provider-specific figures carried by the last chunks.
    """

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    done: bool = False
    skipped: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New text of the answer being streamed, from ``provider``."""

    text: str
    provider: str


@dataclass(frozen=True, slots=True)
class StreamRestarted:
    """The stream from ``from_provider`` broke after text was shown; it starts again on ``to_provider``.

    The caller should discard the ``discarded`` text it already showed: the
    answer that follows is complete on its own.
    """

    from_provider: str
    to_provider: str
    reason: str
    discarded: str


@dataclass(frozen=True, slots=True)
class StreamStarted:
    """The first token arrived from ``provider`` (``model``) after ``seconds``.

    ``cached`` is True when the answer is replayed from PatCode's response cache;
    ``fallback`` when ``provider`` is not the first the call tried (it failed,
    was skipped, or lost a hedged race).
    """

    provider: str
    model: str
    seconds: float
    cached: bool = False
    fallback: bool = False


#: What iterating a stream yields: text, notices, and finally the result.
StreamEvent = TextDelta | StreamStarted | StreamRestarted | CompletionResult


@dataclass(frozen=True, slots=True)
class Availability:
    """What ``provider_available`` answers: can this provider serve right now?"""

    available: bool
    reason: str = ""
    suggestion: str = ""
    kind: ErrorKind | None = None
    models: tuple[str, ...] = ()

    @classmethod
    def from_error(cls, error: ProviderError) -> Availability:
        """"Not available", for the reason and with the cure ``error`` carries."""
        return cls(False, error.message, error.suggestion, error.kind)


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """What a plugin's ``provider_info`` returns about one provider.

    :param name: short lowercase name used in settings and commands (``acme``).
    :param display_name: how people write it (``Acme``; by default the name, capitalised).
    :param settings_class: the plugin's :class:`ProviderSettings` subclass,
        with its own environment prefix and defaults.
    :param key_env: the variable that holds its API key, or ``None`` when the
        provider needs no key (a provider whose key is unset is skipped
        without any network call).
    :param priority: where it goes when the user names no order (lower first).
    :param description: one line for ``/llm providers``.
    :param prices: USD per million tokens by model (``"*"`` for every
        model), each with the date it was taken; unknown models cost
        "unknown", never 0.
    :param joins_default_order: whether the provider is tried when the user
        names no ``LLM_FALLBACK_ORDER`` (``False`` for test and echo plugins:
        they answer only when named).
    :param rate_limit_headers: where the provider's answers say how much of
        its rate limit is left, when not in ``x-ratelimit-*``.
    :param cold_start: seconds the provider's first answer in a process may
        take beyond its usual pace (a server loading a model, a model loaded
        in process): added to the first-token limit of its first request,
        whose timings are not learned.
    """

    name: str
    settings_class: type[ProviderSettings]
    display_name: str = ""
    key_env: str | None = None
    priority: int = 100
    description: str = ""
    prices: Mapping[str, Price] = field(default_factory=dict)
    cold_start: float = 0.0
    joins_default_order: bool = True
    rate_limit_headers: RateLimitHeaders | None = None

    def __post_init__(self) -> None:
        if not self.display_name:
            object.__setattr__(self, "display_name", self.name.title())
