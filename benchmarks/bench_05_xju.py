"""OS-SCL training throughput and peak memory of the four XJU systems (notebook 05) on CPU.

One optimiser step = forward pass of a batch of clips through the fusion model (SpecAugment on the
BEATs / EAT fbanks), the OS-SCL loss (sub-center ArcFace mixup cross-entropy + SupCon), backward
pass, an AdamW update and the EMA update -- what ``asd_utils.training.Trainer`` does per step with
``grad_accum_steps = 1``, without data loading. Every system is measured at two sizes:

- ``stand-in``: the ``default`` profile's model (tiny BEATs / EAT stand-ins, |FFT| width 0.25),
  2.5 s crops, batch 16, one torch thread (the notebook's setting for it) and two threads;
- ``base``: BEATs-iter3 / EAT-base architectures (random weights, same cost as the checkpoints),
  |FFT| width 1.0, 10 s clips as in the report, batch ``--base-batch`` (default 2: a batch of 16
  does not fit a sensible CPU time budget; per-clip cost is what scales), two threads.

Each configuration runs in a fresh subprocess, so its peak resident memory (``ru_maxrss``) is its
own; the figure includes the Python/torch runtime (~300 MiB).

    python benchmarks/bench_05_xju.py [--steps 2] [--base-batch 2] [--only stand-in|base]
                                      [--systems EAT-FFT ...] [--merge]

A configuration whose process dies (e.g. out of memory on a shared machine) is recorded with its
``error`` and the run continues.

Writes ``benchmarks/results/05_xju.json`` atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "05_xju.json"
SYSTEMS = ("BEATs-FFT", "EAT-FFT", "EAT-BEATs", "EAT-BEATs-FFT")
N_CLASSES = 50  # the default profile's class count on the synthetic data


def measure(system: str, size: str, batch_size: int, clip_seconds: float, fft_width: float, steps: int,
            threads: int) -> dict:
    """Time ``steps`` optimiser steps after one warm-up step (in this process)."""
    import torch

    from asd_utils.config import load_config
    from asd_utils.methods import xju
    from asd_utils.training import EMA, build_optimizer, seed_everything

    torch.set_num_threads(threads)
    seed_everything(0, deterministic=False)
    model_cfg = load_config("05_xju", "default")["model"]
    for name in ("beats", "eat"):
        model_cfg["backbones"][name]["size"] = size
    model_cfg["fft"]["width"] = fft_width
    model_cfg["spec_augment"]["time_mask_param"] = 80
    crop = int(round(clip_seconds * 16000))
    backbones = xju.load_backbones(system, model_cfg, {}, crop_samples=crop)
    model = xju.build_system(system, model_cfg, backbones, crop_samples=crop)
    loss = xju.OSSCLLoss(N_CLASSES, model.dim, subcenters=114, margin=0.2, temperature=0.04)
    params = [p for p in list(model.parameters()) + list(loss.parameters()) if p.requires_grad]
    optimizer = build_optimizer(params, "adamw", lr=1e-4)
    ema = EMA(model, 0.9995)
    gen = torch.Generator().manual_seed(0)
    collate = xju.OSSCLMixupCollate(crop, gen, alpha=0.5)
    batch = [(torch.randn(crop) * 0.05, torch.tensor(i % N_CLASSES)) for i in range(batch_size)]
    model.train()
    loss.train()

    def step() -> None:
        x, targets = collate(batch)
        optimizer.zero_grad(set_to_none=True)
        loss(model(x), targets).backward()
        optimizer.step()
        ema.update(model)

    step()  # warm-up (allocations, kernel selection)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - wall) / steps
    cpu_seconds = (time.process_time() - cpu) / steps
    return {"system": system, "size": size, "clip_seconds": clip_seconds, "batch_size": batch_size,
            "threads": threads, "steps": steps, "parameters": sum(p.numel() for p in params),
            "seconds_per_step": round(seconds, 3), "cpu_seconds_per_step": round(cpu_seconds, 3),
            "steps_per_s": round(1.0 / seconds, 4), "clips_per_s": round(batch_size / seconds, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def configurations(args) -> list[dict]:
    out = []
    for system in SYSTEMS:
        if args.only in (None, "stand-in"):
            for threads in (1, 2):
                out.append({"system": system, "size": "tiny", "batch_size": 16, "clip_seconds": 2.5,
                            "fft_width": 0.25, "steps": args.steps, "threads": threads})
        if args.only in (None, "base"):
            out.append({"system": system, "size": "base", "batch_size": args.base_batch, "clip_seconds": 10.0,
                        "fft_width": 1.0, "steps": args.steps, "threads": 2})
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--base-batch", type=int, default=2)
    parser.add_argument("--only", choices=["stand-in", "base"], default=None)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--systems", nargs="*", default=None, help="measure only these systems")
    parser.add_argument("--merge", action="store_true", help="keep the other rows of an existing --output")
    parser.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one configuration, in a fresh process
        print(json.dumps(measure(**json.loads(args.child))))
        return {}
    from asd_utils.storage.atomic import atomic_write_json

    rows = []
    if args.merge and args.output.exists():  # keep the rows of configurations not measured now
        rows = json.loads(args.output.read_text())["rows"]
    for config in configurations(args):
        if args.systems and config["system"] not in args.systems:
            continue
        size = "stand-in" if config["size"] == "tiny" else "base"
        key = (config["system"], size, config["threads"])
        rows = [r for r in rows if (r["system"], r["size"], r["threads"]) != key]
        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)], capture_output=True, text=True)
        if done.returncode != 0:  # e.g. killed by the kernel's out-of-memory killer on a shared machine
            reason = f"exit code {done.returncode}" + (" (killed: out of memory?)" if done.returncode == -9 else "")
            rows.append({**config, "size": size, "error": reason})
            print(f"{config['system']:14s} {size:8s} failed: {reason}", flush=True)
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["size"] = size
        rows.append(row)
        print(f"{row['system']:14s} {row['size']:8s} batch {row['batch_size']:2d} x {row['clip_seconds']:4} s "
              f"threads {row['threads']}: {row['steps_per_s']:.4f} steps/s ({row['seconds_per_step']} s/step, "
              f"CPU {row['cpu_seconds_per_step']} s), {row['parameters']:,} parameters, "
              f"peak RSS {row['peak_rss_mib']} MiB", flush=True)
    import torch

    report = {"benchmark": "05_xju_osscl_training", "device": "cpu", "torch": torch.__version__,
              "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "load_average_1min_at_end": round(os.getloadavg()[0], 2),
              "note": "CPU timings on a shared machine; a high load average inflates seconds_per_step "
                      "(cpu_seconds_per_step is less affected). Base size = random weights of the "
                      "published architectures.",
              "rows": rows}
    atomic_write_json(args.output, report)
    return report


if __name__ == "__main__":
    main()
