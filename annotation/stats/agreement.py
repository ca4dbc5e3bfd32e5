"""Inter-annotator agreement on the oriented choice (a / b / tie), from per-item count vectors.

Sums are integer or grouped by judgments-per-item so that results do not depend on row order."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def krippendorff_alpha_nominal(counts: np.ndarray) -> float | None:
    """counts[u, c]: judgments of item u with value c. Items with fewer than two judgments are not pairable."""
    m = counts.sum(1)
    coincidence = np.zeros((counts.shape[1], counts.shape[1]))
    for size in np.unique(m[m >= 2]):
        group = counts[m == size].astype(np.int64)
        pairs = group.T @ group - np.diag(group.sum(0))
        coincidence += pairs / (size - 1)
    marginals = coincidence.sum(1)
    n = marginals.sum()
    expected = n * n - (marginals**2).sum()
    if n <= 1 or expected == 0:
        return None
    observed = coincidence.sum() - np.trace(coincidence)
    return float(1 - (n - 1) * observed / expected)


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Only defined when every item has the same number of judgments (≥ 2); None otherwise."""
    m = counts.sum(1)
    if len(m) == 0 or m.min() != m.max() or m[0] < 2:
        return None
    per = int(m[0])
    units = len(m)
    c = counts.astype(np.int64)
    p_bar = ((c**2).sum() - units * per) / (units * per * (per - 1))
    shares = c.sum(0) / (units * per)
    p_e = float((shares**2).sum())
    if p_e == 1:
        return None
    return float((p_bar - p_e) / (1 - p_e))


def percent_agreement(counts: np.ndarray) -> float | None:
    """Share of agreeing pairs among all pairs of judgments of the same item."""
    c = counts.astype(np.int64)
    m = c.sum(1)
    pairs = (m * (m - 1)).sum()
    if pairs == 0:
        return None
    return float((c * (c - 1)).sum() / pairs)


def cohen_kappa_mean(
    item: np.ndarray, annotator: np.ndarray, choice: np.ndarray, *, min_shared: int = 10, categories: int = 3
) -> tuple[float | None, int]:
    """Mean Cohen's kappa over annotator pairs who judged at least `min_shared` common items.

    One sparse product per category pair gives every annotator pair's 3×3 confusion table at once."""
    if len(item) == 0:
        return None, 0
    items, item_idx = np.unique(item, return_inverse=True)
    people, person_idx = np.unique(annotator, return_inverse=True)
    shape = (len(people), len(items))
    one_hot = [
        sparse.csr_matrix(
            (np.ones(int((choice == c).sum())), (person_idx[choice == c], item_idx[choice == c])), shape=shape
        )
        for c in range(categories)
    ]
    table = [[(one_hot[c] @ one_hot[d].T).tocsr() for d in range(categories)] for c in range(categories)]
    shared = sum(table[c][d] for c in range(categories) for d in range(categories))
    upper = sparse.triu(shared, k=1).tocoo()
    keep = upper.data >= min_shared
    rows, cols, n = upper.row[keep], upper.col[keep], upper.data[keep]
    if len(n) == 0:
        return None, 0
    conf = np.stack(
        [
            np.stack([np.asarray(table[c][d][rows, cols]).ravel() for d in range(categories)], -1)
            for c in range(categories)
        ],
        -2,
    )  # (pairs, c, d)
    p_o = np.trace(conf, axis1=1, axis2=2) / n
    p_e = (conf.sum(2) * conf.sum(1)).sum(1) / (n * n)
    defined = p_e < 1
    if not defined.any():
        return None, 0
    kappas = np.sort((p_o[defined] - p_e[defined]) / (1 - p_e[defined]))
    return float(kappas.mean()), int(defined.sum())
