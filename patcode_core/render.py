"""Text blocks the CLI prints: provider list, stats, answers, errors."""

from __future__ import annotations

from collections.abc import Sequence

from patcode_core.breaker import CircuitState
from patcode_core.errors import PatCodeError
from patcode_core.i18n import t
from patcode_core.manager import LLMManager, ProviderStatus
from patcode_core.types import CompletionResult


def providers_block(rows: Sequence[ProviderStatus]) -> str:
    """``/llm providers``: one ✅/❌ line per provider, with the reason and the cure."""
    lines = [t("cli.providers_title")]
    if not rows:
        lines.append("  " + t("error.no_providers"))
    for row in rows:
        mark = "✅" if row.available else "❌"
        current = f" {t('cli.current_tag')}" if row.current else ""
        model = f" · {row.model}" if row.model else ""
        line = f"  {mark} {row.name}{current}{model}"
        if not row.available:
            reason = row.reason.rstrip(".")
            line += f" — {reason}" + (f". {row.suggestion}" if row.suggestion else "")
        lines.append(line)
        lines.extend("     " + note for note in _resilience_notes(row))
    return "\n".join(lines)


def _resilience_notes(row: ProviderStatus) -> list[str]:
    """Open circuits and rate limits in force, with the time to the next try."""
    notes = []
    for circuit in row.circuits:
        if circuit.state is CircuitState.OPEN:
            notes.append(
                t("cli.circuit_open", model=circuit.model, failures=circuit.failures, seconds=f"{circuit.retry_in:.0f}")
            )
        else:
            notes.append(t("cli.circuit_half_open", model=circuit.model))
    if row.quota is not None and row.quota.blocked_for > 0:
        notes.append(t("cli.quota_blocked", model=row.model, seconds=f"{row.quota.blocked_for:.0f}"))
    return notes


def stats_block(manager: LLMManager) -> str:
    """``/llm stats``: the documentation's block, then per-provider figures."""
    configured = [name for name in manager.installed if manager.is_configured(name)]
    on_off = t("cli.enabled") if manager.auto_fallback else t("cli.disabled")
    lines = [
        t("cli.stats_title"),
        t("cli.stats_current", provider=manager.get_current_provider() or "-"),
        t("cli.stats_available", providers=", ".join(configured) or "-"),
        t("cli.stats_fallback", state=on_off),
    ]
    figures = manager.stats()
    for name in manager.installed:
        stats = figures.get(name)
        if stats is None:
            continue
        lines += [
            "",
            f"{name}:",
            "  " + t("cli.stats_requests", value=stats.requests),
            "  " + t("cli.stats_successes", value=stats.successes),
            "  " + t("cli.stats_failures", value=stats.failures),
            "  " + t("cli.stats_success_rate", value=f"{stats.success_rate:.1f}"),
            "  " + t("cli.stats_mean_time", value=f"{stats.mean_time:.2f}"),
        ]
        if stats.retries:
            lines.append("  " + t("cli.stats_retries", value=stats.retries))
        if stats.skipped:
            lines.append("  " + t("cli.stats_skipped", value=stats.skipped))
        if stats.cancelled:
            lines.append("  " + t("cli.stats_cancelled", value=stats.cancelled))
    if not figures:
        lines += ["", t("cli.stats_empty")]
    return "\n".join(lines)


def answer_header(result: CompletionResult) -> str:
    """The line above an answer: who served it, with which model, how fast."""
    return t("cli.answer_header", provider=result.provider, model=result.model, seconds=f"{result.latency:.2f}")


def answer_notes(result: CompletionResult, max_tokens: int) -> list[str]:
    """Warnings that belong under an answer (cut by the token limit)."""
    return [t("cli.truncated", max_tokens=max_tokens)] if result.truncated else []


def error_text(error: PatCodeError) -> str:
    """A user-facing error as one block starting with ❌."""
    return f"❌ {error}"
