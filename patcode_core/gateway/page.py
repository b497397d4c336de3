"""The web page at ``/``, rendered on the server: providers, fallback order, statistics with charts, history, cache.

Every string that came from a provider, a plugin or the history is made
printable (control and bidi characters shown escaped) and HTML-escaped
before it is written. The page needs no script and loads nothing from the
network.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

from patcode_core import __version__
from patcode_core.accounting import series
from patcode_core.errors import PatCodeError
from patcode_core.gateway import charts
from patcode_core.i18n import current_language, t
from patcode_core.routing.breaker import CircuitState
from patcode_core.safe_text import printable_line

if TYPE_CHECKING:
    from patcode_core.gateway.app import Gateway
    from patcode_core.manager import ProviderStatus
    from patcode_core.routing.learned_limits import StreamLimits

STYLE = """
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --mark: #0969da; --muted: #6e7781; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1rem 1.5rem 3rem; }
header { display: flex; align-items: baseline; gap: 1rem; border-bottom: 1px solid #8884; }
h1 { font-size: 1.4rem; margin: .5rem 0; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #8883; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted, .tick { color: var(--muted); fill: var(--muted); font-size: .8rem; }
#flash { padding: .6rem .8rem; border-radius: 6px; margin: 1rem 0; }
#flash.ok { background: #1a7f3722; } #flash.error { background: #cf222e22; }
#test-result { padding: .6rem .8rem; border-radius: 6px; margin: 1rem 0; white-space: pre-wrap; }
#test-result[data-ok="true"] { background: #1a7f3722; } #test-result[data-ok="false"] { background: #cf222e22; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1rem; }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: .3rem; }
svg.chart .mark { fill: var(--mark); } svg.chart .line { fill: none; stroke: var(--mark); stroke-width: 2; }
svg.chart .axis { stroke: var(--muted); }
input[name=order] { width: min(40rem, 100%); font: inherit; padding: .25rem; }
button { font: inherit; cursor: pointer; }
"""


def text(value: Any) -> str:
    """Untrusted text ready for HTML: controls and bidi marks shown escaped, then HTML-escaped."""
    return escape(printable_line(str(value)))


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _usd(value: float | None) -> str:
    return t("page.unknown") if value is None else f"${value:.4f}"


def _tokens(value: int | None) -> str:
    return t("page.unknown") if value is None else f"{value:,}"


def _document(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="{current_language()}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><h1>PatCode</h1><span class="muted">{escape(t("page.subtitle", version=__version__))}</span></header>'
        f"{body}</body></html>"
    )


def _csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{escape(token)}">'


def login_page(csrf: str, error: str | None) -> str:
    """The page shown when a token is set and the browser has no session (``error``: why the last login failed)."""
    notice = f'<p id="flash" class="error">{text(error)}</p>' if error else ""
    return _document(t("page.login_title"), (
        f"<h2>{escape(t('page.login_title'))}</h2>{notice}<p>{escape(t('page.login_help'))}</p>"
        f'<form id="login" method="post" action="/ui/login">{_csrf(csrf)}'
        f'<input type="password" name="token" autocomplete="current-password" required '
        f'aria-label="PATCODE_SERVER_TOKEN"> <button type="submit">{escape(t("page.login_button"))}</button></form>'
    ))


def _circuit(gateway: Gateway, row: ProviderStatus) -> str:
    if not row.circuits:
        return escape(t("page.circuit_closed"))
    parts = []
    for circuit in row.circuits:
        state = t("page.circuit_open", seconds=f"{circuit.retry_in:.0f}") if circuit.state is CircuitState.OPEN \
            else t("page.circuit_half_open")
        parts.append(f"{text(circuit.model)}: {escape(state)}")
    return "<br>".join(parts)


def _limits(found: StreamLimits | None) -> str:
    if found is None:
        return "—"
    source = t("page.limits_learned", samples=found.samples) if found.learned else t("page.limits_default")
    return escape(t("page.limits", first=f"{found.first_token:g}", idle=f"{found.idle:g}", source=source))


def _providers(gateway: Gateway, rows: Sequence[ProviderStatus], csrf: str) -> str:
    limits = {name: found for name, _, found in gateway.manager.limits_in_force()}
    lines = []
    for row in rows:
        mark = "✅" if row.available else "❌"
        state = t("page.available") if row.available else t("page.unavailable")
        reason = gateway.manager.scrub(row.reason)
        if row.suggestion:
            reason = f"{reason.rstrip('.')}. {gateway.manager.scrub(row.suggestion)}"
        current = f' <span class="muted">{escape(t("page.current"))}</span>' if row.current else ""
        lines.append(
            f'<tr data-provider="{text(row.name)}"><td class="name"><strong>{text(row.name)}</strong>{current}</td>'
            f'<td class="status">{mark} {escape(state)}</td><td class="reason">{text(reason)}</td>'
            f'<td class="model">{text(row.model) or "—"}</td><td class="circuit">{_circuit(gateway, row)}</td>'
            f'<td class="limits">{_limits(limits.get(row.name))}</td>'
            f'<td><form class="test-provider" method="post" action="/ui/test">{_csrf(csrf)}'
            f'<input type="hidden" name="provider" value="{text(row.name)}">'
            f'<button type="submit">{escape(t("page.test_button"))}</button></form></td></tr>'
        )
    head = "".join(f"<th>{escape(t(key))}</th>" for key in (
        "page.col_provider", "page.col_status", "page.col_reason", "page.col_model", "page.col_circuit", "page.col_limits"))
    return f'<table id="providers"><thead><tr>{head}<th></th></tr></thead><tbody>{"".join(lines)}</tbody></table>'


def _test_result(gateway: Gateway) -> str:
    if not gateway.tests:
        return ""
    name, (ok, message) = next(reversed(gateway.tests.items()))
    return (f'<div id="test-result" data-provider="{text(name)}" data-ok="{"true" if ok else "false"}">'
            f"<strong>{text(name)}</strong>: {text(message)}</div>")


def _order(gateway: Gateway, csrf: str) -> str:
    entries = gateway.manager.fallback_order
    items = "".join(f"<li>{text(entry)}</li>" for entry in entries)
    value = ",".join(str(entry) for entry in entries)
    return (
        f'<h2>{escape(t("page.order_title"))}</h2><ol id="order-current">{items}</ol>'
        f'<form id="fallback-order" method="post" action="/ui/order">{_csrf(csrf)}'
        f'<input name="order" value="{text(value)}" aria-label="LLM_FALLBACK_ORDER"> '
        f'<button type="submit">{escape(t("page.order_button"))}</button></form>'
        f'<p class="muted">{escape(t("page.order_help", file=str(gateway.env_file)))}</p>'
    )


def _period(chosen: str) -> str:
    options = "".join(
        f'<option value="{name}"{" selected" if name == chosen else ""}>{escape(t(f"page.period_{name}"))}</option>'
        for name in series.PERIODS
    )
    return (f'<form id="period" method="get" action="/"><label>{escape(t("page.period"))} '
            f'<select name="since">{options}</select></label> <button type="submit">{escape(t("page.show"))}</button></form>')


def _spread(gateway: Gateway, rows: Sequence[series.ModelUsage]) -> str:
    total = sum(row.requests for row in rows)
    parts = " · ".join(f"{text(row.provider)}/{text(row.model)} {100 * row.requests / total:.1f}%" for row in rows if row.requests) \
        if total else "—"
    return (f'<p id="spread">{escape(t("page.routing", strategy=gateway.manager.balancer.strategy))} '
            f'{escape(t("page.spread"))} {parts}</p>')


def _usage(rows: Sequence[series.ModelUsage]) -> str:
    if not rows:
        return f'<p class="muted" id="usage-empty">{escape(t("page.no_data"))}</p><table id="usage"></table>'
    keys = ("page.col_provider", "page.col_model", "page.col_requests", "page.col_ok", "page.col_failed",
            "page.col_cache", "page.col_p50", "page.col_p95", "page.col_tokens_in", "page.col_tokens_out", "page.col_cost")
    head = "".join(f'<th{" class=num" if index > 1 else ""}>{escape(t(key))}</th>' for index, key in enumerate(keys))
    body = "".join(
        f'<tr data-provider="{text(row.provider)}" data-model="{text(row.model)}"><td>{text(row.provider)}</td>'
        f"<td>{text(row.model)}</td><td class=num>{row.requests}</td><td class=num>{row.successes}</td>"
        f"<td class=num>{row.failures}</td><td class=num>{row.cache_hits}</td><td class=num>{_seconds(row.p50_latency)}</td>"
        f"<td class=num>{_seconds(row.p95_latency)}</td><td class=num>{_tokens(row.input_tokens)}</td>"
        f"<td class=num>{_tokens(row.output_tokens)}</td><td class=num>{_usd(row.cost)}</td></tr>"
        for row in rows
    )
    return f'<table id="usage"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _label(start: float, width: float) -> str:
    moment = datetime.fromtimestamp(start)
    return moment.strftime("%d/%m" if width >= 86400 else "%d/%m %H:%M")


def _charts(buckets: Sequence[series.Bucket]) -> str:
    figures = []
    latency = [charts.Point(_label(b.start, b.width), b.p50_latency) for b in buckets]
    requests = [charts.Point(_label(b.start, b.width), float(b.requests)) for b in buckets]
    cost = [charts.Point(_label(b.start, b.width), b.cost) for b in buckets]
    for chart_id, title, drawn, empty in (
        ("chart-latency", t("page.chart_latency"), charts.line("chart-latency", t("page.chart_latency"), latency, _seconds),
         all(point.value is None for point in latency)),
        ("chart-requests", t("page.chart_requests"),
         charts.bars("chart-requests", t("page.chart_requests"), requests, lambda v: f"{v:g}"),
         not any(point.value for point in requests)),
        ("chart-cost", t("page.chart_cost"), charts.bars("chart-cost", t("page.chart_cost"), cost, _usd),
         not any(point.value for point in cost)),
    ):
        note = f'<p class="chart-empty muted">{escape(t("page.no_data"))}</p>' if empty else ""
        figures.append(f'<figure data-chart="{chart_id}"><figcaption>{escape(title)}</figcaption>{drawn}{note}</figure>')
    return f'<div class="charts">{"".join(figures)}</div>'


def _recent(rows: Sequence[dict[str, Any]], with_content: bool) -> str:
    if not rows:
        return f'<p class="muted">{escape(t("page.no_data"))}</p><table id="recent"></table>'
    keys = ["page.col_when", "page.col_provider", "page.col_model", "page.col_outcome", "page.col_latency",
            "page.col_tokens_in", "page.col_tokens_out", "page.col_cost"]
    if with_content:
        keys += ["page.col_prompt", "page.col_answer"]
    head = "".join(f"<th>{escape(t(key))}</th>" for key in keys)
    body = []
    for row in rows:
        outcome = row["outcome"] + (f" ({row['error_kind']})" if row["error_kind"] else "")
        if row["cached"]:
            outcome += f" · {t('page.cached')}"
        if row["fallback_from"]:
            outcome += f" · {t('page.after', provider=row['fallback_from'])}"
        cells = [time.strftime("%d/%m %H:%M:%S", time.localtime(row["at"])), row["provider"], row["model"], outcome,
                 _seconds(row["latency"]), _tokens(row["input_tokens"]), _tokens(row["output_tokens"]), _usd(row["cost"])]
        if with_content:
            cells += [(row.get("prompt") or "")[:300], (row.get("answer") or "")[:300]]
        body.append("<tr>" + "".join(f"<td>{text(cell)}</td>" for cell in cells) + "</tr>")
    return f'<table id="recent"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _cache(gateway: Gateway, csrf: str, rows: Sequence[Any]) -> str:
    usage = gateway.manager.usage
    enabled = ", ".join(sorted(usage.cache_for))
    state = t("page.cache_on", providers=enabled) if enabled else t("page.cache_off")
    lines = "".join(
        f'<tr data-provider="{text(row.provider)}"><td>{text(row.provider)}</td><td class=num>{row.entries}</td>'
        f"<td class=num>{row.size_bytes:,}</td><td class=num>{row.hits}</td></tr>" for row in rows
    )
    head = "".join(f"<th>{escape(t(key))}</th>" for key in ("page.col_provider", "page.col_entries", "page.col_bytes", "page.col_hits"))
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{lines}</tbody></table>" if rows else \
        f'<p class="muted">{escape(t("page.cache_empty"))}</p>'
    return (
        f'<section id="cache"><h2>{escape(t("page.cache_title"))}</h2><p>{escape(state)}</p>{table}'
        f'<form id="cache-clear" method="post" action="/ui/cache/clear">{_csrf(csrf)}'
        f'<button type="submit">{escape(t("page.cache_clear"))}</button></form></section>'
    )


@dataclass
class _History:
    """What the page shows from the history (empty when it cannot be read)."""

    usage: Sequence[series.ModelUsage] = ()
    buckets: Sequence[series.Bucket] = ()
    latest: Sequence[dict[str, Any]] = ()
    cache: Sequence[Any] = ()


def _history(gateway: Gateway, since: float) -> _History:
    """Every figure the page reads from the store (blocking: run it in a thread)."""
    from patcode_core.accounting.history import cache_summary

    usage = gateway.manager.usage
    store = usage.store
    return _History(series.by_model(store, since), series.over_time(store, since),
                    series.recent(store, 30, usage.log_content), cache_summary(store))


async def main_page(gateway: Gateway, period: str, csrf: str, flash: tuple[str, str] | None) -> str:
    """The whole page for one period (``1h``, ``24h``, ``7d``, ``30d``, ``all``)."""
    import asyncio

    manager = gateway.manager
    rows = await manager.providers_status()
    try:  # off the event loop: the history may live on a server that is slow or gone
        history = await asyncio.to_thread(_history, gateway, series.since_of(period))
    except PatCodeError as exc:
        history, flash = _History(), flash or ("error", manager.scrub(str(exc)))
    usage, buckets, latest = history.usage, history.buckets, history.latest
    notice = f'<p id="flash" class="{flash[0]}">{text(flash[1])}</p>' if flash else ""
    return _document("PatCode", (
        f"{notice}<section><h2>{escape(t('page.providers_title'))}</h2>{_providers(gateway, rows, csrf)}"
        f"{_test_result(gateway)}</section>"
        f"<section>{_order(gateway, csrf)}</section>"
        f"<section id=\"stats\"><h2>{escape(t('page.stats_title'))}</h2>{_period(period)}{_spread(gateway, usage)}"
        f"{_usage(usage)}{_charts(buckets)}</section>"
        f"<section><h2>{escape(t('page.recent_title'))}</h2>{_recent(latest, manager.usage.log_content)}</section>"
        f"{_cache(gateway, csrf, history.cache)}"
    ))
