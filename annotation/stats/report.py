"""The preference report: pairs, Bradley–Terry ratings, agreement, position bias, per-domain pairs.

Bootstrap by items, vectorised: an item's outcome is its count vector (wins_a, wins_b, ties), and a
pair has only a handful of distinct vectors. Resampling n items with replacement is the same as one
multinomial draw over those distinct vectors weighted by their frequency, so a round costs O(types),
not O(items), and the same draw gives every pair's counts for the Bradley–Terry refit of that round
(a bootstrap stratified by pair, which keeps the study's design fixed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import agreement, bt
from .proportions import holm, items_needed, sign_test, wilson
from .sequential import ALPHA, evidence_path, outcomes, sequential
from .table import TIE, Table, oriented

DEFAULT_BOOT = 1000


def _num(value: Any) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


@dataclass
class _Kind:
    name: str
    x: np.ndarray  # per row: oriented system codes and choice
    y: np.ndarray
    choice: np.ndarray
    item_counts: np.ndarray  # (items, 3) oriented a/b/tie counts
    item_pair: np.ndarray  # pair index per item
    item_domain: np.ndarray
    item_code: np.ndarray  # per row: item index within the kind
    pairs: list[tuple[int, int]]


def _kind_view(table: Table, k: int, reference: str | None) -> _Kind:
    mask = table.kind == k
    sub = table.subset(mask)
    x, y, choice = oriented(sub, reference)
    s = len(table.systems)
    pair_keys, pair_idx = np.unique(x * s + y, return_inverse=True)
    items, item_code = np.unique(sub.item, return_inverse=True)
    n_items = len(items)
    counts = np.bincount(item_code * 3 + choice, minlength=n_items * 3).reshape(n_items, 3)
    item_pair = np.empty(n_items, dtype=np.int64)
    item_pair[item_code] = pair_idx
    item_domain = np.empty(n_items, dtype=np.int64)
    item_domain[item_code] = sub.domain
    bad = np.flatnonzero((item_pair[item_code] != pair_idx) | (item_domain[item_code] != sub.domain))
    if len(bad):
        raise ValueError(
            f"item {bad[0]} of kind {table.kinds[k]!r} appears with different system pairs or domains; "
            "an item is one comparison of one pair"
        )
    return _Kind(
        name=table.kinds[k],
        x=x,
        y=y,
        choice=choice,
        item_counts=counts,
        item_pair=item_pair,
        item_domain=item_domain,
        item_code=item_code,
        pairs=[(int(key // s), int(key % s)) for key in pair_keys],
    )


def _resample(counts: np.ndarray, rng: np.random.Generator, rounds: int) -> np.ndarray:
    """Summed (a, b, tie) counts of `rounds` item-bootstrap resamples of these items: shape (rounds, 3)."""
    top = int(counts.max()) + 1
    keys = (counts[:, 0] * top + counts[:, 1]) * top + counts[:, 2]
    _, first, freq = np.unique(keys, return_index=True, return_counts=True)
    draws = rng.multinomial(len(counts), freq / len(counts), size=rounds)
    return draws @ counts[first]


def _pair_rows(
    kind: str,
    systems: tuple[str, ...],
    pairs: list[tuple[int, int]],
    sums: np.ndarray,  # (pairs, 3)
    n_items: np.ndarray,
    boot: np.ndarray,  # (rounds, pairs, 3)
    target: float,
) -> list[dict[str, Any]]:
    a, b, t = sums[:, 0], sums[:, 1], sums[:, 2]
    n = sums.sum(1)
    lo, hi = wilson(a, a + b)
    p = sign_test(a, a + b)
    boot_rate = (boot[..., 0] + boot[..., 2] / 2) / boot.sum(-1)
    b_lo, b_hi = np.percentile(boot_rate, [2.5, 97.5], axis=0)
    rows = []
    for i, (x, y) in enumerate(pairs):
        decisive = int(a[i] + b[i])
        half = (hi[i] - lo[i]) / 2 if decisive else np.nan
        rows.append(
            {
                "kind": kind,
                "system_a": systems[x],
                "system_b": systems[y],
                "items": int(n_items[i]),
                "n": int(n[i]),
                "wins_a": int(a[i]),
                "wins_b": int(b[i]),
                "ties": int(t[i]),
                "win_rate_a": float((a[i] + t[i] / 2) / n[i]),
                "margin_a": float((a[i] - b[i]) / n[i]),
                "win_share": float(a[i] / n[i]),
                "tie_share": float(t[i] / n[i]),
                "loss_share": float(b[i] / n[i]),
                "wilson_low": _num(lo[i]),
                "wilson_high": _num(hi[i]),
                "p_value": float(p[i]),
                "p_holm": None,  # filled once the whole report's family is known
                "bootstrap_low": float(b_lo[i]),
                "bootstrap_high": float(b_hi[i]),
                "wilson_half_width": _num(half),
                "items_needed": items_needed(int(a[i]), int(b[i]), int(n_items[i]), target),
            }
        )
    return rows


def _pairs_of(view: _Kind, select: np.ndarray, rng: np.random.Generator, rounds: int) -> tuple:
    """Sums, item counts and bootstrap counts for the pairs present among the selected items."""
    present = np.unique(view.item_pair[select])
    sums = np.zeros((len(present), 3), dtype=np.int64)
    n_items = np.zeros(len(present), dtype=np.int64)
    boot = np.zeros((rounds, len(present), 3), dtype=np.int64)
    for j, pair in enumerate(present):
        counts = view.item_counts[select & (view.item_pair == pair)]
        sums[j] = counts.sum(0)
        n_items[j] = len(counts)
        boot[:, j] = _resample(counts, rng, rounds)
    return present, sums, n_items, boot


def _ratings(kind: str, systems: tuple[str, ...], pairs: list[tuple[int, int]], sums, boot) -> list[dict[str, Any]]:
    used = sorted({s for pair in pairs for s in pair})
    if len(used) < 2:
        return []
    pos = {s: i for i, s in enumerate(used)}
    size = len(used)

    def wins_matrix(c: np.ndarray) -> np.ndarray:  # c: (..., pairs, 3)
        w = np.zeros((*c.shape[:-2], size, size))
        for j, (x, y) in enumerate(pairs):
            w[..., pos[x], pos[y]] += c[..., j, 0] + c[..., j, 2] / 2
            w[..., pos[y], pos[x]] += c[..., j, 1] + c[..., j, 2] / 2
        return w

    beta = bt.fit(wins_matrix(sums))
    boot_beta = bt.fit(wins_matrix(boot), beta0=beta)
    elo, boot_elo = bt.to_elo(beta), bt.to_elo(boot_beta)
    lo, hi = np.percentile(boot_elo, [2.5, 97.5], axis=0)
    rank, boot_rank = bt.ranks(beta), bt.ranks(boot_beta)
    r_lo, r_hi = np.percentile(boot_rank, [2.5, 97.5], axis=0)
    judged = np.zeros(size, dtype=np.int64)
    for j, (x, y) in enumerate(pairs):
        judged[pos[x]] += sums[j].sum()
        judged[pos[y]] += sums[j].sum()
    rows = [
        {
            "kind": kind,
            "system": systems[s],
            "n": int(judged[i]),
            "rating": float(elo[i]),
            "rating_low": float(lo[i]),
            "rating_high": float(hi[i]),
            "rank": int(rank[i]),
            "rank_low": int(np.floor(r_lo[i])),
            "rank_high": int(np.ceil(r_hi[i])),
        }
        for i, s in enumerate(used)
    ]
    return sorted(rows, key=lambda r: (-r["rating"], r["system"]))


def _agreement(kind: str, view: _Kind, annotator: np.ndarray, min_shared: int) -> dict[str, Any]:
    counts = view.item_counts
    m = counts.sum(1)
    kappa, kappa_pairs = agreement.cohen_kappa_mean(view.item_code, annotator, view.choice, min_shared=min_shared)
    return {
        "kind": kind,
        "items": int((m >= 2).sum()),
        "judgments": int(m.sum()),
        "annotators": len(np.unique(annotator)),
        "krippendorff_alpha": agreement.krippendorff_alpha_nominal(counts),
        "fleiss_kappa": agreement.fleiss_kappa(counts),
        "cohen_kappa_mean": kappa,
        "cohen_pairs": kappa_pairs,
        "percent_agreement": agreement.percent_agreement(counts),
    }


def _position_bias(kind: str, sub: Table) -> list[dict[str, Any]]:
    """Per kind, overall and per annotator: the position habit (share of decisive judgments that chose the
    left response, sign test against 50%) and the tie share among all judgments, so that ties given by
    habit (a share far above everyone's) show next to a side habit."""
    known = (sub.left >= 0) & (sub.choice != TIE)
    chosen = np.where(sub.choice == 0, sub.system_a, sub.system_b)
    chose_left = (chosen == sub.left)[known]
    is_tie = sub.choice == TIE
    who = sub.annotator[known]
    groups: list[tuple[str | None, np.ndarray, np.ndarray]] = [(None, chose_left, is_tie)]
    for code in np.unique(sub.annotator):
        groups.append((sub.annotators[code], chose_left[who == code], is_tie[sub.annotator == code]))
    rows = []
    for label, picks, ties in groups:
        n, left = len(picks), int(picks.sum())
        judgments, tie_count = len(ties), int(ties.sum())
        rows.append(
            {
                "kind": kind,
                "annotator": label,
                "n": n,
                "left": left,
                "left_share": left / n if n else None,
                "p_value": float(sign_test(left, n)),
                "judgments": judgments,
                "ties": tie_count,
                "tie_share": tie_count / judgments if judgments else None,
            }
        )
    return rows


def sequential_rows(
    table: Table,
    *,
    reference: str | None = None,
    family_size: int | None = None,
    alpha: float = ALPHA,
    paths: bool = False,
) -> list[dict[str, Any]]:
    """Anytime-valid figures per pair, each pair's judgments in arrival order (created_at, then row order).

    Family-wise error over the pairs by Bonferroni: each pair's sequence is at level α/m, so all m
    sequences cover their win rates at all times together with probability ≥ 1 − α, and the chance that
    any pair is ever decided the wrong way (or at all, when equal) is ≤ α."""
    order = np.argsort(table.created_at, kind="stable")  # nan (unknown) sorts last, in row order
    x, y, choice = oriented(table, reference)
    x, y, choice, kind = x[order], y[order], choice[order], table.kind[order]
    s = len(table.systems)
    keys = np.unique((kind * s + x) * s + y)
    m = family_size or len(keys)
    rows = []
    for key in keys:
        k, pair = divmod(int(key), s * s)
        a, b = divmod(pair, s)
        codes = choice[(kind == k) & (x == a) & (y == b)]
        counts = np.bincount(codes, minlength=3)
        stream = outcomes(codes)
        seq = sequential(stream, alpha / m)
        rows.append(
            {
                "kind": table.kinds[k],
                "system_a": table.systems[a],
                "system_b": table.systems[b],
                "n": seq.n,
                "wins_a": int(counts[0]),
                "wins_b": int(counts[1]),
                "ties": int(counts[2]),
                "win_rate_a": seq.mean,
                "cs_low": seq.cs_low,
                "cs_high": seq.cs_high,
                "half_width": (seq.cs_high - seq.cs_low) / 2,
                "e_value": seq.e_value,
                "p_anytime": seq.p_anytime,
                "decided": seq.decided,
                "alpha": alpha,
                "family_size": m,
                **({"evidence": evidence_path(stream, alpha / m)} if paths else {}),
            }
        )
    return rows


def preference_report(
    table: Table,
    *,
    reference: str | None = None,
    exclude_annotators: Iterable[str] = (),
    rounds: int = DEFAULT_BOOT,
    seed: int = 0,
    target_half_width: float = 0.05,
    min_shared: int = 10,
    family_size: int | None = None,
    alpha: float = ALPHA,
    sequential_paths: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Every figure of the contract, as plain lists of dicts (JSON-ready).

    `family_size`: the number of pairs the study's design compares (default: the pairs with judgments);
    the sequential rows are Bonferroni-corrected over it; `sequential_paths` adds each pair's evidence
    path (for the plot)."""
    excluded = {str(a) for a in exclude_annotators}
    if excluded:
        drop = np.array([label in excluded for label in table.annotators], dtype=bool)
        table = table.subset(~drop[table.annotator]) if len(drop) else table
    report: dict[str, list[dict[str, Any]]] = {
        "pairs": [],
        "ratings": [],
        "agreement": [],
        "position_bias": [],
        "domains": [],
        "sequential": sequential_rows(
            table, reference=reference, family_size=family_size, alpha=alpha, paths=sequential_paths
        ),
    }
    for k in np.unique(table.kind):
        view = _kind_view(table, int(k), reference)
        sub = table.subset(table.kind == k)
        everything = np.ones(len(view.item_counts), dtype=bool)
        rng = np.random.default_rng([seed, int(k)])
        present, sums, n_items, boot = _pairs_of(view, everything, rng, rounds)
        pairs = [view.pairs[p] for p in present]
        report["pairs"] += _pair_rows(view.name, table.systems, pairs, sums, n_items, boot, target_half_width)
        report["ratings"] += _ratings(view.name, table.systems, pairs, sums, boot)
        report["agreement"].append(_agreement(view.name, view, sub.annotator, min_shared))
        report["position_bias"] += _position_bias(view.name, sub)
        for d in np.unique(view.item_domain):
            drng = np.random.default_rng([seed, int(k), 1 + int(d)])
            present, sums, n_items, boot = _pairs_of(view, view.item_domain == d, drng, rounds)
            rows = _pair_rows(
                view.name, table.systems, [view.pairs[p] for p in present], sums, n_items, boot, target_half_width
            )
            report["domains"] += [{"domain": table.domains[d], **row} for row in rows]
    for key in ("pairs", "domains"):
        adjusted = holm(np.array([row["p_value"] for row in report[key]]))
        for row, p in zip(report[key], adjusted, strict=True):
            row["p_holm"] = float(p)
    return report
