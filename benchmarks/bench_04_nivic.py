"""Training throughput (clips/s) and peak memory of report 002's model on CPU.

One training step = the two-branch :class:`asd_utils.models.seresnet.SEResNetFFTModel` (|FFT| +
SE-ResNet18 log-mel branch) on a batch of crops, StatEx and FeatEx, the C / 3C / 9C sub-cluster
AdaCos heads (:class:`asd_utils.training.statex.SelfSupervisedHeads`), backward pass and an Adam
update: what ``asd_utils.training.Trainer`` does per batch, without data loading and mixup. Measured
at the ``default`` and ``paper`` sizes of ``asd_utils/configs/04_nivic.yaml`` after one warm-up
step; peak memory is the process's peak resident set size after each configuration
(``resource.getrusage``, so it only grows: the paper figure includes the default one).

Two timings per configuration: wall-clock seconds per step with torch's default threads, and
process CPU seconds per step with **one** thread. The single-thread CPU time hardly depends on how
busy a shared machine is; with several threads, OpenMP's spin-waiting inflates CPU time under
contention, so that figure would not mean much there.

    python benchmarks/bench_04_nivic.py [--steps 3] [--only default|paper]

Writes ``benchmarks/results/04_nivic.json`` atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import torch

from asd_utils.config import load_config
from asd_utils.methods.nivic import build_model
from asd_utils.storage.atomic import atomic_write_json
from asd_utils.training import seed_everything

RESULTS = Path(__file__).resolve().parent / "results" / "04_nivic.json"
N_CLASSES = 60  # about what the synthetic default gives: 7 types x attributes/pseudo-labels x domains + simulated


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _build(profile: str):
    cfg = {**load_config("04_nivic", profile)["model"], "sample_rate": 16000}
    seed_everything(0, deterministic=False)
    model, heads = build_model(cfg, N_CLASSES, ssl=True)
    params = [p for p in list(model.parameters()) + list(heads.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    batch = int(cfg["batch_size"])
    waves = torch.randn(batch, model.n_samples)
    labels = torch.randint(0, N_CLASSES, (batch,))
    model.train()
    heads.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        heads(model(waves), labels).backward()
        optimizer.step()

    return cfg, model, step


def _time_steps(step, steps: int) -> tuple[float, float]:
    step()  # warm-up (allocations, kernel selection)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu_start) / steps


def measure(profile: str, steps: int) -> dict:
    """Time ``steps`` training steps at the profile's model size; return throughput and memory."""
    cfg, model, step = _build(profile)
    seconds, _ = _time_steps(step, steps)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, cpu_seconds = _time_steps(_build(profile)[2], steps)
    finally:
        torch.set_num_threads(threads)
    batch = int(cfg["batch_size"])
    return {"crop_seconds": float(cfg["crop_seconds"]), "width": float(cfg["width"]), "n_mels": int(cfg["n_mels"]),
            "emb_dim_per_branch": int(cfg["emb_dim"]), "n_subclusters": int(cfg["n_subclusters"]),
            "batch_size": batch, "steps": steps, "parameters": model.num_parameters(),
            "seconds_per_step": round(seconds, 4), "clips_per_s": round(batch / seconds, 2),
            "cpu_seconds_per_step_1_thread": round(cpu_seconds, 4),
            "peak_rss_mib": round(_peak_rss_mib(), 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--only", choices=["default", "paper"], default=None)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = {}
    for profile in ("default", "paper"):
        if args.only and profile != args.only:
            continue
        results[profile] = measure(profile, args.steps)
        r = results[profile]
        print(f"{profile:8s} crop={r['crop_seconds']:>4} s width={r['width']:<5} {r['clips_per_s']:8.2f} clips/s "
              f"({r['seconds_per_step']:.3f} s/step; 1 thread: {r['cpu_seconds_per_step_1_thread']:.3f} CPU s/step; "
              f"{r['parameters']:,} parameters, peak RSS {r['peak_rss_mib']} MiB)")
    report = {"benchmark": "04_nivic_training_throughput", "device": "cpu", "torch": torch.__version__,
              "threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
              "note": "CPU timings on a shared machine; a high load average inflates seconds_per_step",
              "results": results}
    atomic_write_json(args.output, report)
    return report


if __name__ == "__main__":
    main()
