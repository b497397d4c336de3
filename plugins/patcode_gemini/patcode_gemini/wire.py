"""The Gemini API's wire format: the request body, and what one ``GenerateContentResponse`` says.

Reference: https://ai.google.dev/api/generate-content (read 2026-11-26) and the
``v1beta`` protos (``google/ai/generativelanguage/v1beta/generative_service.proto``
in googleapis/googleapis). A plain answer is one ``GenerateContentResponse``;
a stream (``?alt=sse``) is one per ``data:`` event, each with the new text,
the usage so far (cumulative), and ``finishReason`` on the last one. There is
no ``[DONE]``: a stream is whole when a candidate carries a ``finishReason``.

Token counts: ``usageMetadata.candidatesTokenCount`` leaves out the model's
thinking (``thoughtsTokenCount``), which Google bills as output ("Output price
(including thinking tokens)", https://ai.google.dev/gemini-api/docs/pricing).
PatCode's ``output_tokens`` is their sum, as OpenAI's ``completion_tokens``
includes its reasoning tokens, so costs come out right; the split is kept in
``extra["usage"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from patcode_core.plugin import (
    FINISH_LENGTH,
    FINISH_STOP,
    CompletionRequest,
    ErrorKind,
    ProviderContext,
    ProviderError,
    ProviderReply,
    ProviderSettings,
    Usage,
)
from patcode_gemini.errors import clean, from_google, malformed, read_error
from patcode_gemini.messages import MESSAGES
from patcode_gemini.settings import OFFICIAL_BASE_URL

API_VERSION = "v1beta"
#: Finish reasons that are Google's content filters: the answer is withheld or cut (``Candidate.FinishReason``).
FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
#: The finish reasons of a whole answer, in PatCode's words. Any other (``OTHER``, ``MALFORMED_FUNCTION_CALL``,
#: ``UNEXPECTED_TOOL_CALL``, ...) means the text may be cut: never passed off as a whole answer.
FINISHED = {"STOP": FINISH_STOP, "MAX_TOKENS": FINISH_LENGTH}
_USAGE_FIELDS = (
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "cachedContentTokenCount",
    "toolUsePromptTokenCount",
    "totalTokenCount",
)


def resource(model: str) -> str:
    """``models/{model}`` (a ``models/...`` or ``tunedModels/...`` name is kept), escaped for a URL path."""
    name = model.strip()
    if not name.startswith(("models/", "tunedModels/")):
        name = f"models/{name}"
    return quote(name, safe="/-._~")


def path(settings: ProviderSettings, model: str, method: str | None = None) -> str:
    """``/v1beta/models/{model}[:method]``, relative to the base URL (which may already end in ``/v1beta``).

    An empty ``GEMINI_BASE_URL`` means "no base URL of my own": Google's, in full.
    """
    if not settings.base_url:
        return f"{OFFICIAL_BASE_URL}/{API_VERSION}/{resource(model)}" + (f":{method}" if method else "")
    base_path = httpx.URL(settings.base_url).path.rstrip("/")
    version = "" if base_path.endswith(("/v1beta", "/v1")) else f"/{API_VERSION}"
    target = f"{version}/{resource(model)}"
    return f"{target}:{method}" if method else target


def request_body(request: CompletionRequest) -> dict[str, Any]:
    """The ``GenerateContentRequest``: ``contents`` (roles ``user``/``model``), ``systemInstruction``, ``generationConfig``.

    System messages are joined into the one ``systemInstruction``; PatCode's
    ``assistant`` is Gemini's ``model``; consecutive messages of one role
    become one turn with several parts, as turns alternate.
    """
    system = [message.content for message in request.messages if message.role == "system"]
    contents: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].append({"text": message.content})
        else:
            contents.append({"role": role, "parts": [{"text": message.content}]})
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    body["generationConfig"] = {"temperature": request.temperature, "maxOutputTokens": request.max_tokens}
    return body


@dataclass(frozen=True, slots=True)
class Piece:
    """What one ``GenerateContentResponse`` adds to the answer.

    :param text: its new visible text (thought summaries left out).
    :param finish: PatCode's finish word when the candidate finished, else ``None``.
    :param usage: the counts so far, when it carries ``usageMetadata``.
    :param model: ``modelVersion``, the model that answers.
    :param extra: ``usage`` (every count Google gave), ``response_id``, ``model_version``.
    :param thoughts: thinking tokens so far (to explain an answer the thinking left empty).
    """

    text: str = ""
    finish: str | None = None
    usage: Usage | None = None
    model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    thoughts: int = 0


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usage_of(event: dict[str, Any]) -> Usage | None:
    """``promptTokenCount`` in, ``candidatesTokenCount + thoughtsTokenCount`` out (what Google bills as output)."""
    meta = event.get("usageMetadata")
    if not isinstance(meta, dict):
        return None
    visible, thoughts = _int(meta.get("candidatesTokenCount")), _int(meta.get("thoughtsTokenCount"))
    output = None if visible is None and thoughts is None else (visible or 0) + (thoughts or 0)
    return Usage(_int(meta.get("promptTokenCount")), output)


def extra_of(event: dict[str, Any]) -> dict[str, Any]:
    """Provider figures worth keeping: every token count, the response id and the model version."""
    extra: dict[str, Any] = {}
    meta = event.get("usageMetadata")
    if isinstance(meta, dict):
        counts = {name: meta[name] for name in _USAGE_FIELDS if _int(meta.get(name)) is not None}
        if counts:
            extra["usage"] = counts
    for source, target in (("responseId", "response_id"), ("modelVersion", "model_version")):
        if isinstance(event.get(source), str):
            extra[target] = event[source]
    return extra


def _text(candidate: dict[str, Any]) -> str:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return ""
    return "".join(
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str) and part.get("thought") is not True
    )


def _flagged(ratings: object) -> str:
    """The harm categories a ``safetyRatings`` list blocked (or rated MEDIUM/HIGH), for the message."""
    if not isinstance(ratings, list):
        return ""
    rated = [rating for rating in ratings if isinstance(rating, dict) and isinstance(rating.get("category"), str)]
    blocked = [rating["category"] for rating in rated if rating.get("blocked") is True]
    if not blocked:
        blocked = [rating["category"] for rating in rated if rating.get("probability") in ("MEDIUM", "HIGH")]
    return ", ".join(blocked)


def _reason(code: str, *details: object) -> str:
    """``SAFETY: HARM_CATEGORY_DANGEROUS_CONTENT`` (with Google's own words, when it gave some)."""
    said = [clean(detail) for detail in details if isinstance(detail, str) and detail.strip()]
    return ": ".join([code, *said]) if said else code


def read_piece(context: ProviderContext, event: dict[str, Any], model: str, *, in_stream: bool = False) -> Piece:
    """One ``GenerateContentResponse`` read, or the ProviderError it stands for.

    :raises ProviderError: an ``error`` object (sent inside a 200), a prompt
        blocked by ``promptFeedback.blockReason``, a candidate cut by a
        content filter (``CONTENT_FILTER``), or one ended for a reason that
        may leave the text cut (``MALFORMED_RESPONSE``).
    """
    error = read_error(event)
    if error is not None:
        raise from_google(context, error, model, in_stream=in_stream)
    usage = usage_of(event)
    answering = event.get("modelVersion") if isinstance(event.get("modelVersion"), str) else None
    meta = event.get("usageMetadata") if isinstance(event.get("usageMetadata"), dict) else {}
    thoughts = _int(meta.get("thoughtsTokenCount")) or 0
    candidates = event.get("candidates")
    candidate = candidates[0] if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict) else None
    if candidate is None:
        feedback = event.get("promptFeedback")
        block = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if isinstance(block, str) and block:
            reason = _reason(block, feedback.get("blockReasonMessage"), _flagged(feedback.get("safetyRatings")))
            raise context.error(
                ErrorKind.CONTENT_FILTER, MESSAGES.t("blocked_prompt", reason=reason), MESSAGES.t("rephrase"), model=model
            )
        return Piece(usage=usage, model=answering, extra=extra_of(event), thoughts=thoughts)
    text = _text(candidate)
    code = candidate.get("finishReason")
    finish = None
    if isinstance(code, str) and code:
        if code in FILTERED:
            reason = _reason(code, candidate.get("finishMessage"), _flagged(candidate.get("safetyRatings")))
            raise context.error(
                ErrorKind.CONTENT_FILTER, MESSAGES.t("blocked_answer", reason=reason), MESSAGES.t("rephrase"), model=model
            )
        finish = FINISHED.get(code)
        if finish is None:
            raise malformed_finish(context, _reason(code, candidate.get("finishMessage")), model)
    return Piece(text, finish, usage, answering, extra_of(event), thoughts)


def malformed_finish(context: ProviderContext, reason: str, model: str) -> ProviderError:
    """An answer ended by ``OTHER`` (or any reason but STOP, MAX_TOKENS and the filters): it may be cut."""
    return context.error(
        ErrorKind.MALFORMED_RESPONSE, MESSAGES.t("unexpected_finish", reason=reason), MESSAGES.t("retry_later"), model=model
    )


def parse_reply(context: ProviderContext, body: Any, request: CompletionRequest) -> ProviderReply:
    """A whole ``generateContent`` answer; anything unusable is a ProviderError of its kind."""
    model = request.model
    error = read_error(body)
    if error is not None:
        raise from_google(context, error, model)
    if not isinstance(body, dict):
        raise malformed(context, "not a GenerateContentResponse object", model)
    piece = read_piece(context, body, model)
    if piece.finish is None:
        candidates = body.get("candidates")
        raise malformed(context, "no finishReason" if candidates else "no candidates", model)
    if not piece.text:
        if piece.finish == FINISH_LENGTH:
            raise context.error(
                ErrorKind.MALFORMED_RESPONSE,
                MESSAGES.t("thinking_used_budget", max_tokens=request.max_tokens, thoughts=piece.thoughts),
                MESSAGES.t("raise_max_tokens"),
                model=model,
            )
        raise context.error(
            ErrorKind.MALFORMED_RESPONSE, MESSAGES.t("empty_answer", reason="STOP"), MESSAGES.t("retry_later"), model=model
        )
    return ProviderReply(
        text=piece.text,
        model=piece.model or model,
        finish_reason=piece.finish,
        usage=piece.usage or Usage(),
        extra=piece.extra,
    )
