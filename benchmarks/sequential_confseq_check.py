"""Cross-check annotation/stats/sequential.py against the authors' reference, `confseq.betting.hedged_cs`.

confseq has no wheels (its C++ part needs a compiler and Boost) and its Python part uses `np.float_`,
gone in NumPy 2, so it is not a dependency. To run this check:

    pip download confseq==0.0.11 --no-deps --no-binary :all: -d /tmp/cs
    tar xzf /tmp/cs/confseq-0.0.11.tar.gz -C /tmp/cs
    PYTHONPATH=. python benchmarks/sequential_confseq_check.py /tmp/cs/confseq-0.0.11/src

Only the pure-Python betting modules are imported (matplotlib and multiprocess are stubbed out).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotation.stats import sequential as sq


def load_confseq(src: str):  # type: ignore[no-untyped-def]
    np.float_ = np.float64  # type: ignore[attr-defined]  # confseq predates NumPy 2
    for name in ("matplotlib", "matplotlib.pyplot", "multiprocess"):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.path.insert(0, src)
    from confseq.betting import betting_mart, hedged_cs
    from confseq.betting_strategies import lambda_predmix_eb

    return betting_mart, hedged_cs, lambda_predmix_eb


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    betting_mart, hedged_cs, lambda_predmix_eb = load_confseq(sys.argv[1])
    rng = np.random.default_rng(1)
    breaks, worst = 2000, 0.0
    print(f"{'n':>4} {'confseq low':>12} {'ours low':>9} {'confseq high':>13} {'ours high':>10}")
    for _ in range(20):
        n = int(rng.integers(5, 400))
        x = rng.choice([1.0, 0.0, 0.5], size=n, p=rng.dirichlet([1, 1, 1]))
        low, high = hedged_cs(x, alpha=0.05, breaks=breaks, running_intersection=True)
        ours_low, ours_high = sq.confidence_sequence(x, 0.05)
        assert np.allclose(lambda_predmix_eb(x, alpha=0.025), sq.predictable_bets(x, 0.025))
        wealth = betting_mart(x, 0.5, alpha=0.05, convex_comb=True, theta=0.5, trunc_scale=0.5)
        assert np.allclose(wealth, sq.e_value_path(x, 0.05))
        worst = max(worst, abs(low[-1] - ours_low), abs(high[-1] - ours_high))
        print(f"{n:>4} {low[-1]:>12.4f} {float(ours_low):>9.4f} {high[-1]:>13.4f} {float(ours_high):>10.4f}")
    print(f"bets and wealth identical; largest end-point gap {worst:.1e} (confseq's grid step is {1 / breaks:.1e})")


if __name__ == "__main__":
    main()
