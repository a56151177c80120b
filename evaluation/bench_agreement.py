"""Benchmark: Krippendorff's alpha in coder vs the `krippendorff` package, same data, same run.

100,000 units x 10 coders, values 1-5, 10% missing (seeded). Prints the median of --repeat timed
calls for each implementation, the ratio ours/package (target <= 1.2), that both give the same
alpha, and the time of the 95% bootstrap interval (target < 10 s).

    python evaluation/bench_agreement.py [--units 100000] [--coders 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import krippendorff
import numpy as np

from coder.analysis import coefficients


def timed_pair(ours, theirs, repeat: int) -> tuple[float, float, float, float]:
    """Median times of two callables, run alternately so that load on a shared machine falls
    on both alike."""
    t_a, t_b, a, b = [], [], None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        a = ours()
        t1 = time.perf_counter()
        b = theirs()
        t2 = time.perf_counter()
        t_a.append(t1 - t0)
        t_b.append(t2 - t1)
    return statistics.median(t_a), statistics.median(t_b), a, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=100_000)
    ap.add_argument("--coders", type=int, default=10)
    ap.add_argument("--missing", type=float, default=0.10)
    ap.add_argument("--values", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--resamples", type=int, default=coefficients.DEFAULT_RESAMPLES)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    truth = rng.integers(1, args.values + 1, size=args.units)
    noise = rng.integers(1, args.values + 1, size=(args.units, args.coders))
    x = np.where(rng.random((args.units, args.coders)) < 0.7, truth[:, None], noise).astype(float)
    x[rng.random(x.shape) < args.missing] = np.nan
    xt = np.ascontiguousarray(x.T)  # the package takes coders x units

    print(f"data: {args.units:,} units x {args.coders} coders, values 1-{args.values}, "
          f"{args.missing:.0%} missing; median of {args.repeat} alternating runs; "
          f"python {platform.python_version()}, numpy {np.__version__}")
    print(f"{'level':<10}{'coder (s)':>11}{'package (s)':>13}{'ratio':>8}{'alpha':>10}  same")
    for level in ("nominal", "interval"):
        t_ours, t_pkg, ours, pkg = timed_pair(
            lambda lv=level: coefficients.krippendorff_alpha(x, lv),
            lambda lv=level: krippendorff.alpha(xt, level_of_measurement=lv), args.repeat)
        same = abs(ours - pkg) < 1e-9
        print(f"{level:<10}{t_ours:>11.3f}{t_pkg:>13.3f}{t_ours / t_pkg:>8.2f}{ours:>10.4f}  "
              f"{'yes' if same else 'NO (%.3g)' % abs(ours - pkg)}")
    for level in ("nominal", "interval"):
        t0 = time.perf_counter()
        ci, info = coefficients.alpha_bootstrap(x, level, resamples=args.resamples, seed=args.seed)
        t = time.perf_counter() - t0
        print(f"bootstrap {level}: {t:.2f} s for {info['resamples']} resamples (seed "
              f"{info['seed']}, {info['valid']} valid): 95% interval [{ci[0]:.4f}, {ci[1]:.4f}]")


if __name__ == "__main__":
    main()
