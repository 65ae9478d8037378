"""Benchmark: the package's exact kNN engine vs faiss (``IndexFlatIP`` / ``IndexFlatL2``) as its ranker.

The engine, :func:`asd_utils.scoring.knn.knn_search`, ranks the bank with a blocked float32
matrix product and ``torch.topk``, then recomputes the candidates' distances in float64. faiss
would replace the ranking step only (its distances are float32), so three things are timed on the
same float32 arrays with the same number of threads, interleaved, best of ``repeats`` (wall
time, and process CPU time, which a loaded machine disturbs less):

- ``engine``: ``knn_search(queries, bank, k)`` as the scorers call it (bank preparation included);
- ``faiss_raw``: build the flat index, add the bank, ``index.search(queries, k)`` (float32 only);
- ``faiss_engine``: faiss ranking of ``k + margin`` candidates plus the same float64 re-ranking,
  i.e. what the engine would cost with faiss inside (the fair comparison).

Cosine uses ``IndexFlatIP`` on L2-normalised rows; Euclidean ``IndexFlatL2``. It also reports the
largest difference of the k-th distance between the engine and each faiss variant, and whether the
neighbour indices agree. Writes ``probes/results/knn_engine.json`` and ``knn_engine.md``.

    python probes/probe_knn_engine.py            # DCASE size and 1e4 queries x 1e5 bank x 256
    python probes/probe_knn_engine.py --quick    # DCASE size only
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

try:
    import faiss  # the question this probe answers; not a dependency of the compendium
except ImportError as err:  # pragma: no cover
    raise SystemExit("this probe compares the engine with faiss: pip install faiss-cpu==1.15.1") from err

from asd_utils.scoring.knn import knn_search
from asd_utils.storage.atomic import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
# (label, queries M, bank N, dim D, repeats)
DCASE = ("DCASE section", 200, 1_000, 768, 30)
LARGE = ("1e4 x 1e5 x 256", 10_000, 100_000, 256, 2)
MARGIN = 8


def _faiss_index(bank32: np.ndarray, metric: str):
    index = faiss.IndexFlatIP(bank32.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(bank32.shape[1])
    index.add(bank32)
    return index


def _normalised(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def faiss_raw(queries: np.ndarray, bank: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """faiss alone: (M, k) float64 distances (cosine: 1 - inner product; euclidean: sqrt of L2^2)."""
    if metric == "cosine":
        sim, idx = _faiss_index(_normalised(bank), metric).search(_normalised(queries), k)
        return 1.0 - sim.astype(np.float64), idx
    sq, idx = _faiss_index(np.ascontiguousarray(bank, dtype=np.float32), metric).search(
        np.ascontiguousarray(queries, dtype=np.float32), k)
    return np.sqrt(np.maximum(sq.astype(np.float64), 0.0)), idx


def faiss_engine(queries: np.ndarray, bank: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """faiss ranking of ``k + MARGIN`` candidates, then the engine's exact float64 re-ranking."""
    n_cand = min(len(bank), k + MARGIN)
    if metric == "cosine":
        _, idx = _faiss_index(_normalised(bank), metric).search(_normalised(queries), n_cand)
    else:
        _, idx = _faiss_index(np.ascontiguousarray(bank, dtype=np.float32), metric).search(
            np.ascontiguousarray(queries, dtype=np.float32), n_cand)
    q64 = queries.astype(np.float64)
    out_d = np.empty((len(queries), k))
    out_i = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 1024):  # bounded (rows, n_cand, D) float64 candidates
        sl = slice(start, start + 1024)
        cand = bank[idx[sl]].astype(np.float64)
        if metric == "cosine":
            dots = np.einsum("bd,bcd->bc", q64[sl], cand)
            denom = np.linalg.norm(q64[sl], axis=1)[:, None] * np.linalg.norm(cand, axis=2)
            dist = np.clip(1.0 - dots / np.maximum(denom, 1e-24), 0.0, 2.0)
        else:
            diff = cand - q64[sl, None, :]
            dist = np.sqrt(np.einsum("bcd,bcd->bc", diff, diff))
        order = np.lexsort((idx[sl], dist), axis=1)[:, :k]
        out_d[sl] = np.take_along_axis(dist, order, axis=1)
        out_i[sl] = np.take_along_axis(idx[sl], order, axis=1)
    return out_d, out_i


def bench_one(label: str, m: int, n: int, d: int, repeats: int, metric: str, k: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    bank = rng.standard_normal((n, d), dtype=np.float32)
    queries = rng.standard_normal((m, d), dtype=np.float32)
    runs = {
        "engine": lambda: knn_search(queries, bank, k, metric=metric),
        "faiss_raw": lambda: faiss_raw(queries, bank, k, metric),
        "faiss_engine": lambda: faiss_engine(queries, bank, k, metric),
    }
    best = dict.fromkeys(runs, float("inf"))
    best_cpu = dict.fromkeys(runs, float("inf"))
    out = {}
    for _ in range(repeats):  # interleaved, so a load spike hits every method alike
        for name, fn in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            out[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
            best_cpu[name] = min(best_cpu[name], time.process_time() - start_cpu)
    ref_d, ref_i = out["engine"]
    row = {"size": label, "queries": m, "bank": n, "dim": d, "metric": metric, "k": k, "repeats": repeats}
    for name in runs:
        row[f"{name}_s"] = best[name]
        row[f"{name}_cpu_s"] = best_cpu[name]
    for name in ("faiss_raw", "faiss_engine"):
        dist, idx = out[name]
        row[f"{name}_max_abs_diff"] = float(np.max(np.abs(dist - ref_d)))
        row[f"{name}_same_neighbours"] = float(np.mean(idx == ref_i))
    return row


def _markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Exact kNN engine vs faiss (synthetic Gaussian embeddings)",
        "",
        f"Written by `probes/probe_knn_engine.py`; {meta['threads']} threads (torch and faiss), "
        f"load average at start {meta['load_average']}, best of the repeats, interleaved. "
        f"faiss-cpu {meta['faiss']}, torch {meta['torch']}, numpy {meta['numpy']}.",
        "",
        "`engine` = `asd_utils.scoring.knn.knn_search` (float32 ranking, float64 re-ranking); `faiss raw` = "
        "flat index build + search, float32 distances; `faiss + re-rank` = faiss ranking of k + 8 candidates "
        "and the engine's float64 re-ranking (what adopting faiss would cost). Times in seconds; speed-up = "
        "engine / faiss + re-rank (> 1: faiss faster), wall and CPU. diff = largest |distance - engine distance|.",
        "",
        "| size (M x N x D) | metric | k | engine (s) | faiss raw (s) | faiss + re-rank (s) | speed-up "
        "| engine CPU (s) | faiss raw CPU (s) | faiss + re-rank CPU (s) | speed-up CPU "
        "| diff raw | diff re-rank | same neighbours |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['queries']} x {r['bank']} x {r['dim']} | {r['metric']} | {r['k']} | {r['engine_s']:.4f} "
            f"| {r['faiss_raw_s']:.4f} | {r['faiss_engine_s']:.4f} | {r['engine_s'] / r['faiss_engine_s']:.2f}x "
            f"| {r['engine_cpu_s']:.4f} | {r['faiss_raw_cpu_s']:.4f} | {r['faiss_engine_cpu_s']:.4f} "
            f"| {r['engine_cpu_s'] / r['faiss_engine_cpu_s']:.2f}x "
            f"| {r['faiss_raw_max_abs_diff']:.1e} | {r['faiss_engine_max_abs_diff']:.1e} "
            f"| {r['faiss_engine_same_neighbours']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="DCASE size only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    meta = {
        "threads": args.threads,
        "load_average": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "faiss": faiss.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "data": "synthetic: standard normal float32 bank and queries, seed 0",
    }
    sizes = [DCASE] if args.quick else [DCASE, LARGE]
    rows = []
    for size in sizes:
        for metric in ("cosine", "euclidean"):
            row = bench_one(*size, metric=metric, k=args.k)
            print(row, flush=True)
            rows.append(row)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "knn_engine.json", {"meta": meta, "rows": rows})
    atomic_write_text(RESULTS / "knn_engine.md", _markdown(rows, meta))
    print(_markdown(rows, meta))
    return rows


if __name__ == "__main__":
    main()
