"""Training throughput (clips/s) of the three-subnetwork model on CPU.

One training step = forward pass of a batch of clips, sub-cluster AdaCos loss, backward pass and an
Adam update (what ``asd_utils.training.Trainer`` does per batch, without data loading). The model is
measured at the default-profile size (``--default-width``, ``--default-seconds``; CPU-sized) and at
the paper size (width 1.0, 12 s clips, as in the IOA-CAS report), batch 64, after one warm-up step.

    python benchmarks/bench_three_subnet.py [--steps 3] [--batch-size 64] [--only default|paper]

Writes ``benchmarks/results/three_subnet.json`` atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from asd_utils.models import ThreeSubNetwork
from asd_utils.storage.atomic import atomic_write_json
from asd_utils.training import seed_everything

RESULTS = Path(__file__).resolve().parent / "results" / "three_subnet.json"
N_CLASSES = 42  # e.g. 7 machine types x a few attribute/domain classes
N_SUBCLUSTERS = 16


def measure(width: float, clip_seconds: float, batch_size: int, steps: int, sample_rate: int = 16000) -> dict:
    """Time ``steps`` training steps (after one warm-up step); return throughput figures."""
    seed_everything(0, deterministic=False)
    model = ThreeSubNetwork(N_CLASSES, sample_rate, clip_seconds, width=width)
    loss_fn = model.default_loss(N_SUBCLUSTERS)
    params = [p for p in list(model.parameters()) + list(loss_fn.parameters()) if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    waves = torch.randn(batch_size, model.n_samples)
    labels = torch.randint(0, N_CLASSES, (batch_size,))
    model.train()
    loss_fn.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(waves), labels).backward()
        optimizer.step()

    step()  # warm-up (allocations, kernel selection)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {"width": width, "clip_seconds": clip_seconds, "batch_size": batch_size, "steps": steps,
            "parameters": model.num_parameters(), "seconds_per_step": round(seconds, 4),
            "clips_per_s": round(batch_size / seconds, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--default-width", type=float, default=0.25)
    parser.add_argument("--default-seconds", type=float, default=2.0)
    parser.add_argument("--only", choices=["default", "paper"], default=None)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    configs = {"default": (args.default_width, args.default_seconds), "paper": (1.0, 12.0)}
    results = {}
    for name, (width, seconds) in configs.items():
        if args.only and name != args.only:
            continue
        results[name] = measure(width, seconds, args.batch_size, args.steps)
        print(f"{name:8s} width={width:<5} clip={seconds:>4} s  {results[name]['clips_per_s']:8.2f} clips/s  "
              f"({results[name]['seconds_per_step']:.3f} s/step, {results[name]['parameters']:,} parameters)")
    report = {"benchmark": "three_subnet_training_throughput", "device": "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "load_average_1min_at_end": round(os.getloadavg()[0], 2),
              "note": "CPU timings on a shared machine; a high load average inflates seconds_per_step",
              "results": results}
    atomic_write_json(args.output, report)
    return report


if __name__ == "__main__":
    main()
