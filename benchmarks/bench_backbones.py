"""Throughput and peak memory of the base-size backbones (random weights) on 10 s clips.

For BEATs and EAT (base, untrained stand-ins): clips/s through
``asd_utils.backbones.embeddings.extract_layer_embeddings`` at batch size 1 and 8 (cold), and the same
batch-8 call again with the on-disk cache warm. Peak memory is the process's resident set size
(RSS), sampled every 5 ms by a thread with psutil, minus the RSS just before the measured call
(tracemalloc does not see torch's allocator), plus the process-wide ``ru_maxrss``.

    python benchmarks/bench_backbones.py [--models beats eat] [--clips-b1 3] [--clips-b8 8]

Writes ``benchmarks/results/backbones.json`` atomically and prints a table.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asd_utils.backbones import load_backbone  # noqa: E402
from asd_utils.backbones.embeddings import extract_layer_embeddings  # noqa: E402
from asd_utils.storage.atomic import atomic_write_json  # noqa: E402

SAMPLE_RATE = 16000
CLIP_SECONDS = 10.0


class PeakRSS:
    """Context manager sampling this process's RSS; ``peak_delta_mib`` after exit."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.process = psutil.Process()
        self.peak = 0
        self.base = 0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def peak_delta_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def measure(backbone, waves, *, batch_size, cache_dir=None, layers=None):
    layers = layers or list(range(backbone.num_layers + 1))
    with PeakRSS() as mem:
        start = time.perf_counter()
        extract_layer_embeddings(
            backbone,
            waves,
            layers=layers,
            pooling="mean",
            batch_size=batch_size,
            cache_dir=cache_dir,
            progress=False,
            device="cpu",
        )
        seconds = time.perf_counter() - start
    return {
        "batch_size": batch_size,
        "clips": len(waves),
        "seconds": round(seconds, 4),
        "clips_per_s": round(len(waves) / seconds, 4),
        "peak_rss_delta_mib": round(mem.peak_delta_mib, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["beats", "eat"])
    parser.add_argument("--size", default="base")
    parser.add_argument("--clips-b1", type=int, default=3)
    parser.add_argument("--clips-b8", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "backbones.json"))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    n = int(SAMPLE_RATE * CLIP_SECONDS)
    waves = (0.1 * rng.standard_normal((max(args.clips_b1, args.clips_b8), n))).astype(np.float32)
    rows = []
    for name in args.models:
        rss0 = psutil.Process().memory_info().rss
        t0 = time.perf_counter()
        backbone = load_backbone(name, size=args.size, device="cpu", seed=0)
        build_s = time.perf_counter() - t0
        model_mib = (psutil.Process().memory_info().rss - rss0) / 2**20
        extract_layer_embeddings(backbone, waves[:1], layers=[backbone.num_layers], progress=False)  # warm-up
        with tempfile.TemporaryDirectory() as cache:
            runs = {
                "batch1": measure(backbone, waves[: args.clips_b1], batch_size=1),
                "batch8_cold_cache": measure(backbone, waves[: args.clips_b8], batch_size=8, cache_dir=cache),
                "batch8_warm_cache": measure(backbone, waves[: args.clips_b8], batch_size=8, cache_dir=cache),
            }
        for label, run in runs.items():
            rows.append(
                {
                    "backbone": f"{name}-{args.size}",
                    "weights": "random (untrained stand-in)",
                    "run": label,
                    "build_s": round(build_s, 2),
                    "model_rss_mib": round(model_mib, 1),
                    **run,
                }
            )
        del backbone

    result = {
        "benchmark": "bench_backbones",
        "clip_seconds": CLIP_SECONDS,
        "device": "cpu",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": psutil.cpu_count(),
        "platform": platform.platform(),
        "ru_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rows": rows,
    }
    atomic_write_json(args.out, result)
    header = f"{'backbone':<12} {'run':<18} {'batch':>5} {'clips':>5} {'clips/s':>9} {'peak dRSS MiB':>14}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['backbone']:<12} {r['run']:<18} {r['batch_size']:>5} {r['clips']:>5} "
            f"{r['clips_per_s']:>9.3f} {r['peak_rss_delta_mib']:>14.1f}"
        )
    print(
        f"process ru_maxrss: {result['ru_maxrss_mib']} MiB; torch threads: {result['torch_threads']}; "
        f"written {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
