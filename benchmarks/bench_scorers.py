"""Benchmark: KNNScorer (blocked float32 matmul + float64 re-ranking) vs sklearn brute force.

For each size (queries M, bank N, dim D) and metric, times
``asd_utils.scoring.KNNScorer(k).fit(bank).score(queries)`` against
``sklearn.neighbors.NearestNeighbors(algorithm='brute').fit(bank).kneighbors(queries)`` (mean of
the k distances), both on the same float32 arrays with the same number of threads, checks that
the scores agree (max absolute difference), prints a table and writes
``benchmarks/results/scorers.json`` atomically.

    python benchmarks/bench_scorers.py            # full: up to 1e4 queries x 1e5 bank x 256
    python benchmarks/bench_scorers.py --quick    # small sizes only (seconds)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.neighbors import NearestNeighbors

from asd_utils.scoring import KNNScorer
from asd_utils.storage.atomic import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "scorers.json"
FULL_SIZES = [(1_000, 10_000, 256), (1_000, 100_000, 256), (10_000, 100_000, 256)]
QUICK_SIZES = [(200, 2_000, 64), (1_000, 10_000, 256)]


def _time(fn, repeats: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_one(m: int, n: int, d: int, metric: str, k: int, repeats: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    bank = rng.standard_normal((n, d), dtype=np.float32)
    queries = rng.standard_normal((m, d), dtype=np.float32)

    def ours():
        return KNNScorer(k=k, metric=metric, separate_domains=False).fit(bank).score(queries)

    def sk():
        nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(bank)
        dist, _ = nn.kneighbors(queries)
        return dist.astype(np.float64).mean(axis=1)

    t_sk, ref = _time(sk, repeats)
    t_ours, got = _time(ours, repeats)
    row = {
        "queries": m,
        "bank": n,
        "dim": d,
        "metric": metric,
        "k": k,
        "ours_s": t_ours,
        "sklearn_s": t_sk,
        "speedup": t_sk / t_ours,
        "max_abs_diff_vs_sklearn_float32": float(np.max(np.abs(got - ref))),
    }
    if m * n <= 1e8:  # float64 reference where it is cheap
        nn64 = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(bank.astype(np.float64))
        ref64 = nn64.kneighbors(queries.astype(np.float64))[0].mean(axis=1)
        row["max_abs_diff_vs_sklearn_float64"] = float(np.max(np.abs(got - ref64)))
    return row


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--metrics", default="cosine,euclidean")
    parser.add_argument("--k", type=int, default=1)
    parser.add_argument(
        "--repeats", type=int, default=2, help="best of this many runs (1 at the largest size)"
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    rows = []
    header = (
        f"{'M':>7} {'N':>8} {'D':>4} {'metric':>9} {'k':>2} {'ours s':>8} {'sklearn s':>9} "
        f"{'speedup':>7} {'maxdiff':>9}"
    )
    print(
        f"torch {torch.__version__} threads={torch.get_num_threads()}  sklearn {sklearn.__version__}  "
        f"cpus={os.cpu_count()}"
    )
    print(header)
    for m, n, d in sizes:
        for metric in args.metrics.split(","):
            repeats = 1 if m * n >= 1e9 else args.repeats
            row = bench_one(m, n, d, metric, args.k, repeats)
            rows.append(row)
            print(
                f"{m:>7} {n:>8} {d:>4} {metric:>9} {args.k:>2} {row['ours_s']:>8.3f} "
                f"{row['sklearn_s']:>9.3f} "
                f"{row['speedup']:>7.2f} {row['max_abs_diff_vs_sklearn_float32']:>9.2e}",
                flush=True,
            )
    atomic_write_json(
        args.out,
        {
            "benchmark": "KNNScorer vs sklearn NearestNeighbors(algorithm='brute'), float32 inputs",
            "torch": torch.__version__,
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "rows": rows,
        },
    )
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
