"""The simulator-fidelity plot: per system, the elicitation reward from people's answers and from the
simulator's, each with its 95% bootstrap interval over tasks. Server-side SVG; labels escaped (system names
are data)."""

from __future__ import annotations

from typing import Any

from .svg import _svg, _text

HUMAN, SIMULATED = "#2457c5", "#c0504d"


def reward_dumbbells(systems: list[dict[str, Any]], *, width: int = 760) -> str:
    rows = [s for s in systems if s["human_reward"]["mean"] is not None]
    if not rows:
        return ""
    values = [v for s in rows for key in ("human_reward", "simulated_reward") for v in s[key].values() if v is not None]
    lo, hi = min(0.0, *values), max(1.0, *values)
    label_w, plot_w, row_h = 230, width - 260, 40

    def sx(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    height = 34 + row_h * len(rows) + 24
    body = [
        _text(label_w, 14, "● people's answers", fill=HUMAN),
        _text(label_w + 150, 14, "■ simulated answers", fill=SIMULATED),
        _text(label_w + 310, 14, "mean elicitation reward, 95% bootstrap over tasks", fill="#5b6472", size=11),
    ]
    for i, s in enumerate(rows):
        y = 40 + i * row_h
        body.append(_text(label_w - 8, y + 8, s["system"], anchor="end"))
        for key, colour, dy in (("human_reward", HUMAN, 0), ("simulated_reward", SIMULATED, 14)):
            m = s[key]
            if m["lo"] is not None:
                body.append(
                    f'<line x1="{sx(m["lo"]):.1f}" y1="{y + dy}" x2="{sx(m["hi"]):.1f}" y2="{y + dy}" '
                    f'stroke="{colour}" stroke-width="2"/>'
                )
            if key == "human_reward":
                body.append(f'<circle cx="{sx(m["mean"]):.1f}" cy="{y + dy}" r="4.5" fill="{colour}"/>')
            else:
                body.append(
                    f'<rect x="{sx(m["mean"]) - 4:.1f}" y="{y + dy - 4}" width="8" height="8" fill="{colour}"/>'
                )
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        body.append(_text(sx(v), height - 4, f"{v:.2f}", anchor="middle", size=10))
    return _svg(width, height, body, "Elicitation reward per system: people's answers vs simulated answers")
