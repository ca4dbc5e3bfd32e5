"""Server-side SVG plots for the results page: no JavaScript, every label escaped (system names are data).

No style attributes (the Content-Security-Policy forbids inline styles): sizes and fonts are SVG
attributes, the rest is static/annotation/results.css. Text colours reach WCAG AA (4.5:1) on what
they sit on; tests/annotation/test_results.py computes the ratios."""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

WIN, TIE, LOSS = "#2f7d4f", "#b9bec7", "#c0504d"
INK = "#1d2430"
# Percentage labels inside the bars: white on the dark win/loss colours, dark ink on the light tie grey.
LABEL_ON = {WIN: "#fff", TIE: INK, LOSS: "#fff"}


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, fill: str = "#1d2430") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}">{escape(text)}</text>'
    )


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" class="chart" font-family="system-ui, sans-serif">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def pair_bars(pairs: list[dict[str, Any]], *, width: int = 760) -> str:
    """Per pair: a win/tie/loss stacked bar (shares of all judgments), and below it the share of
    decisive judgments won by system_a with its 95% Wilson interval against the 50% line."""
    label_w, bar_w, row_h = 230, width - 250, 46
    height = 30 + row_h * len(pairs) + 20
    body = [
        _text(label_w, 14, "win", fill=WIN),
        _text(label_w + 40, 14, "tie", fill="#5b6472"),
        _text(label_w + 75, 14, "loss", fill=LOSS),
        _text(label_w + 120, 14, "● A's share of decisive judgments, 95% Wilson interval", fill="#1d2430"),
    ]
    x50 = label_w + bar_w / 2
    body.append(f'<line x1="{x50}" y1="22" x2="{x50}" y2="{height - 18}" stroke="#5b6472" stroke-dasharray="3,3"/>')
    for i, r in enumerate(pairs):
        y = 30 + i * row_h
        body.append(_text(label_w - 8, y + 14, f"{r['system_a']} vs {r['system_b']}", anchor="end"))
        x = label_w
        for share, colour in ((r["win_share"], WIN), (r["tie_share"], TIE), (r["loss_share"], LOSS)):
            w = share * bar_w
            body.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="18" fill="{colour}"/>')
            if w > 34:
                body.append(
                    _text(x + w / 2, y + 13, f"{100 * share:.0f}%", anchor="middle", size=11, fill=LABEL_ON[colour])
                )
            x += w
        if r["wilson_low"] is not None:
            lo, hi = label_w + r["wilson_low"] * bar_w, label_w + r["wilson_high"] * bar_w
            decisive = r["wins_a"] / (r["wins_a"] + r["wins_b"])
            cy = y + 29
            body.append(f'<line x1="{lo:.1f}" y1="{cy}" x2="{hi:.1f}" y2="{cy}" stroke="#1d2430" stroke-width="2"/>')
            body.append(f'<circle cx="{label_w + decisive * bar_w:.1f}" cy="{cy}" r="4" fill="#1d2430"/>')
    for tick in (0, 0.25, 0.5, 0.75, 1):
        body.append(_text(label_w + tick * bar_w, height - 4, f"{100 * tick:.0f}%", anchor="middle", size=10))
    return _svg(width, height, body, "Win, tie and loss shares per pair")


def forest(ratings: list[dict[str, Any]], *, width: int = 760) -> str:
    """Bradley–Terry ratings (Elo scale) with 95% bootstrap intervals, strongest first."""
    if not ratings:
        return ""
    label_w, plot_w, row_h = 230, width - 260, 26
    lo = min(r["rating_low"] for r in ratings)
    hi = max(r["rating_high"] for r in ratings)
    pad = max(5.0, (hi - lo) * 0.08)
    lo, hi = lo - pad, hi + pad

    def sx(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    height = 20 + row_h * len(ratings) + 24
    body = []
    if lo < 1000 < hi:
        body.append(
            f'<line x1="{sx(1000):.1f}" y1="10" x2="{sx(1000):.1f}" y2="{height - 20}" stroke="#5b6472" '
            'stroke-dasharray="3,3"/>'
        )
    for i, r in enumerate(ratings):
        y = 24 + i * row_h
        body.append(_text(label_w - 8, y + 4, f"{r['rank']}. {r['system']}", anchor="end"))
        body.append(
            f'<line x1="{sx(r["rating_low"]):.1f}" y1="{y}" x2="{sx(r["rating_high"]):.1f}" y2="{y}" '
            'stroke="#2457c5" stroke-width="2"/>'
        )
        body.append(f'<rect x="{sx(r["rating"]) - 4:.1f}" y="{y - 4}" width="8" height="8" fill="#2457c5"/>')
        body.append(_text(width - 4, y + 4, f"{r['rating']:.0f}", anchor="end", size=11))
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        body.append(_text(sx(v), height - 4, f"{v:.0f}", anchor="middle", size=10))
    return _svg(width, height, body, "Bradley–Terry ratings with 95% bootstrap intervals")


def sequence_intervals(rows: list[dict[str, Any]], *, width: int = 760) -> str:
    """Per pair: the anytime-valid confidence sequence for A's win rate against the 50% line, green or red
    once decided (the sequence excludes 50%), grey while open."""
    if not rows:
        return ""
    label_w, plot_w, row_h = 230, width - 260, 24
    height = 16 + row_h * len(rows) + 22

    def sx(v: float) -> float:
        return label_w + v * plot_w

    body = [
        f'<line x1="{sx(0.5):.1f}" y1="8" x2="{sx(0.5):.1f}" y2="{height - 18}" stroke="#5b6472" '
        'stroke-dasharray="3,3"/>'
    ]
    for i, r in enumerate(rows):
        y = 20 + i * row_h
        colour = {"a": WIN, "b": LOSS}.get(r["decided"] or "", "#5b6472")
        body.append(_text(label_w - 8, y + 4, f"{r['system_a']} vs {r['system_b']}", anchor="end"))
        body.append(
            f'<line x1="{sx(r["cs_low"]):.1f}" y1="{y}" x2="{sx(r["cs_high"]):.1f}" y2="{y}" '
            f'stroke="{colour}" stroke-width="3"/>'
        )
        if r["win_rate_a"] is not None:
            body.append(f'<circle cx="{sx(r["win_rate_a"]):.1f}" cy="{y}" r="4" fill="#1d2430"/>')
        body.append(_text(width - 4, y + 4, f"n={r['n']}", anchor="end", size=11))
    for tick in (0, 0.25, 0.5, 0.75, 1):
        body.append(_text(sx(tick), height - 4, f"{100 * tick:.0f}%", anchor="middle", size=10))
    return _svg(width, height, body, "Anytime-valid confidence sequences for the win rate of A")


PALETTE = ("#2457c5", "#c0504d", "#2f7d4f", "#8a5cc2", "#d08a1d", "#1f8a99", "#5b6472", "#b0407a")


def evidence_plot(rows: list[dict[str, Any]], *, width: int = 760, height: int = 260) -> str:
    """Per pair, the evidence against "equally preferred" (log10 of the larger hedged wealth) as judgments
    arrive, against the decision line log10(m/α): a pair is decided where its curve first reaches it."""
    rows = [r for r in rows if r.get("evidence")]
    if not rows:
        return ""
    line = float(np.log10(rows[0]["family_size"] / rows[0]["alpha"]))
    several_kinds = len({r["kind"] for r in rows}) > 1
    left, right, top, bottom = 60, 200, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    max_n = max(r["evidence"][-1][0] for r in rows)
    lo = min(-1.0, min(v for r in rows for _, v in r["evidence"]))
    hi = max(line + 1.0, max(v for r in rows for _, v in r["evidence"]))

    def sx(n: float) -> float:
        return left + n / max_n * plot_w

    def sy(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    body = [
        f'<line x1="{left}" y1="{sy(line):.1f}" x2="{left + plot_w}" y2="{sy(line):.1f}" stroke="#1d2430" '
        'stroke-dasharray="5,3"/>',
        _text(left + 4, sy(line) - 5, f"decided: evidence ≥ {10**line:.0f} (= pairs / α)", size=11),
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#5b6472"/>',
    ]
    for k in range(int(np.ceil(lo)), int(np.floor(hi)) + 1):
        body.append(_text(left - 6, sy(k) + 4, f"1e{k}" if k else "1", anchor="end", size=10))
    for i, r in enumerate(rows):
        colour = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{sx(n):.1f},{sy(v):.1f}" for n, v in r["evidence"])
        body.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        label = f"{r['system_a']} vs {r['system_b']}" + (f" ({r['kind']})" if several_kinds else "")
        body.append(_text(left + plot_w + 8, top + 10 + 15 * i, label, size=11, fill=colour))

    for k in range(5):
        n = max_n * k / 4
        body.append(_text(sx(n), height - 8, f"{n:.0f}" + (" judgments" if k == 4 else ""), anchor="middle", size=10))
    return _svg(width, height, body, "Evidence against equal preference as judgments arrive, per pair")
