"""Text blocks the CLI prints: provider list, stats, answers, errors.

Every string that came from a provider or a plugin (names, models, reasons,
error text) is cleaned here with :mod:`patcode_core.safe_text` and redacted,
before PatCode's own layout is put around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from patcode_core.i18n import t
from patcode_core.manager import LLMManager, ProviderStatus
from patcode_core.routing.breaker import CircuitState
from patcode_core.safe_text import for_terminal, printable, printable_line
from patcode_core.types import CompletionResult

if TYPE_CHECKING:
    from patcode_core.accounting.history import ProviderUsage


def providers_block(rows: Sequence[ProviderStatus]) -> str:
    """``/llm providers``: one ✅/❌ line per provider, with the reason and the cure."""
    lines = [t("cli.providers_title")]
    if not rows:
        lines.append("  " + t("error.no_providers"))
    for row in rows:
        mark = "✅" if row.available else "❌"
        current = f" {t('cli.current_tag')}" if row.current else ""
        model = f" · {printable_line(row.model)}" if row.model else ""
        line = f"  {mark} {printable_line(row.name)}{current}{model}"
        if not row.available:
            reason = printable_line(row.reason).rstrip(".")
            line += f" — {reason}" + (f". {printable_line(row.suggestion)}" if row.suggestion else "")
        elif row.reason:  # available, with a note (a model the server serves without listing it)
            line += f" — {printable_line(row.reason)}"
        lines.append(line)
        lines.extend("     " + note for note in _resilience_notes(row))
    return "\n".join(lines)


def _resilience_notes(row: ProviderStatus) -> list[str]:
    """Open circuits and rate limits in force, with the time to the next try."""
    notes = []
    for circuit in row.circuits:
        if circuit.state is CircuitState.OPEN:
            notes.append(
                t("cli.circuit_open", model=printable_line(circuit.model), failures=circuit.failures, seconds=f"{circuit.retry_in:.0f}")
            )
        else:
            notes.append(t("cli.circuit_half_open", model=printable_line(circuit.model)))
    if row.quota is not None and row.quota.blocked_for > 0:
        notes.append(t("cli.quota_blocked", model=printable_line(row.model), seconds=f"{row.quota.blocked_for:.0f}"))
    return notes


def stats_block(manager: LLMManager, figures: Sequence[ProviderUsage] | None = None) -> str:
    """``/llm stats``: the documentation's block, then per-provider figures from the usage history.

    "Configured" providers are those that could be asked (loaded, key set), checked without network:
    whether they answer right now is ``/llm providers``' job.
    """
    configured = [name for name in manager.installed if manager.is_configured(name)]
    on_off = t("cli.enabled") if manager.auto_fallback else t("cli.disabled")
    lines = [
        t("cli.stats_title"),
        t("cli.stats_current", provider=printable_line(manager.get_current_provider() or "-")),
        t("cli.stats_configured", providers=printable_line(", ".join(configured) or "-")),
        t("cli.stats_fallback", state=on_off),
    ]
    figures = list(manager.usage_summary() if figures is None else figures)
    lines.append(t("cli.stats_routing", strategy=manager.balancer.strategy))
    spread = spread_text(figures)
    if spread:
        lines.append(t("cli.stats_spread", spread=spread))
    limits = limits_lines(manager)
    if limits:
        lines += ["", *limits]
    for usage in figures:
        lines += ["", f"{printable_line(usage.provider)}:", *("  " + line for line in _usage_lines(usage))]
    if not figures:
        lines += ["", t("cli.stats_empty_history") if manager.usage.persistent else t("cli.stats_empty")]
    return "\n".join(lines)


def spread_text(figures: Sequence[ProviderUsage]) -> str:
    """How requests were spread over providers: ``a 50.0% · b 50.0%`` (empty with no requests)."""
    total = sum(usage.requests for usage in figures)
    if not total:
        return ""
    return " · ".join(f"{printable_line(usage.provider)} {100 * usage.requests / total:.1f}%" for usage in figures if usage.requests)


def count_of(count: int, one: str, many: str) -> str:
    """``1 respuesta`` / ``2 respuestas``: ``count`` with the catalogue's singular or plural wording."""
    return t(one) if count == 1 else t(many, count=count)


def answers_count(count: int) -> str:
    """``1 respuesta``, ``3 respuestas``."""
    return count_of(count, "cli.answers_one", "cli.answers_many")


def size_text(size: int) -> str:
    """Bytes in the unit that reads best: ``512 B``, ``1.5 KB``, ``2.0 MB``."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _usd(value: float | None) -> str:
    return t("cli.cost_unknown") if value is None else f"${value:.4f}"


def _tokens_line(usage: ProviderUsage) -> str:
    """Tokens in and out of the counted answers, and how many answers had no count (never shown as 0)."""
    if usage.input_tokens is None and usage.output_tokens is None:
        return t("cli.stats_tokens_unknown", answers=answers_count(usage.uncounted_answers))
    unknown = t("cli.cost_unknown")
    line = t(
        "cli.stats_tokens",
        input=unknown if usage.input_tokens is None else usage.input_tokens,
        output=unknown if usage.output_tokens is None else usage.output_tokens,
    )
    if usage.uncounted_answers:
        line += " " + t("cli.stats_tokens_uncounted", answers=answers_count(usage.uncounted_answers))
    return line


def _usage_lines(usage: ProviderUsage) -> list[str]:
    rate = usage.success_rate
    lines = [
        t("cli.stats_requests", value=usage.requests),
        t("cli.stats_successes", value=usage.successes),
        t("cli.stats_failures", value=usage.failures),
        t("cli.stats_success_rate", value=f"{rate:.1f}") if rate is not None else t("cli.stats_success_rate_none"),
        t("cli.stats_mean_time", value=f"{usage.mean_latency or 0.0:.2f}"),
        t("cli.stats_percentiles", p50=_seconds(usage.p50_latency), p95=_seconds(usage.p95_latency)),
        t("cli.stats_first_token", value=_seconds(usage.p50_first_token)),
        _tokens_line(usage),
    ]
    cost = t("cli.cost_unknown") if usage.unpriced_answers else _usd(usage.cost)
    by_model = ", ".join(f"{printable_line(model)} {_usd(value)}" for model, value in sorted(usage.cost_by_model.items()))
    lines.append(t("cli.stats_cost", value=cost) + (f" ({by_model})" if by_model else ""))
    lines.append(t("cli.stats_fallbacks", into=usage.fallbacks_in, out=usage.fallbacks_out))
    lines.append(t("cli.stats_cache_hits", value=usage.cache_hits))
    if usage.skipped:
        lines.append(t("cli.stats_skipped", value=usage.skipped))
    if usage.cancelled:
        hedged = f" {t('cli.stats_hedged', value=usage.hedged)}" if usage.hedged else ""
        lines.append(t("cli.stats_cancelled", value=usage.cancelled) + hedged)
    return lines


def limits_lines(manager: LLMManager) -> list[str]:
    """The stream time limits in force, one line per configured provider (learned, or the defaults)."""
    lines = []
    for name, model, limits in manager.limits_in_force():
        source = (
            t("cli.limits_learned", samples=limits.samples, p99=_seconds(limits.first_token_p99))
            if limits.learned
            else t("cli.limits_default")
        )
        cold = manager.learned_limits.cold_start(name)
        if cold:
            source += t("cli.limits_cold", seconds=f"{cold:g}")
        lines.append(
            "  " + t("cli.limits_line", provider=printable_line(name), model=printable_line(model),
                     first=f"{limits.first_token:g}", idle=f"{limits.idle:g}", source=source)
        )
    return [t("cli.limits_title"), *lines] if lines else []


def answer_header(result: CompletionResult) -> str:
    """The line above an answer: who served it, with which model, how fast (and whether it came from the cache)."""
    return t(
        "cli.answer_header_cached" if result.cached else "cli.answer_header",
        provider=printable_line(result.provider),
        model=printable_line(result.model),
        seconds=f"{result.latency:.2f}",
    )


def answer_text(result: CompletionResult) -> str:
    """The answer as it may be printed: control and invisible characters shown escaped."""
    return for_terminal(result.text)


def error_text(error: BaseException | str) -> str:
    """A user-facing error as one block starting with ❌ (secrets removed, controls shown escaped)."""
    return f"❌ {printable(str(error))}"

