"""Benchmark of notebook 03 (MYPS): EAT-LoRA vs EAT-FFT training steps on the CPU.

For each EAT size (the ``tiny`` stand-in of the default profile, and ``base``, the published
88 M-parameter architecture with random weights) and each variant, one training step of the
notebook's model is timed: EAT encoder on a batch of crops (log-mel front end included), mean of
the patch embeddings, ArcFace head, backward, AdamW update. EAT-FFT trains every weight; EAT-LoRA
trains the LoRA adapters on ``qkv`` and the head only. Reported per case: trainable and total
parameter counts, median seconds per step over the timed steps (after one warm-up step), and the
peak resident memory of a fresh child process that ran only that case (so cases do not share a
peak).

    .venv/bin/python benchmarks/bench_03_myps.py [--threads 2] [--out PATH]

Writes ``benchmarks/results/03_myps.json``. The LoRA settings are the configs' (``default`` for the
stand-in: rank 16 / alpha 32; ``paper`` for base: ASDKit's rank 64 on ``qkv``, alpha 8).
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

CASES = [
    # size, variant, batch, seconds per crop, timed steps
    ("tiny", "EAT-LoRA", 32, 2.0, 5),
    ("tiny", "EAT-FFT", 32, 2.0, 5),
    ("base", "EAT-LoRA", 2, 10.0, 2),
    ("base", "EAT-FFT", 2, 10.0, 2),
]


def child(spec: dict) -> dict:
    """Run one case in this (fresh) process and return its measurements."""
    import numpy as np
    import torch

    from asd_utils.backbones.lora import trainable_parameter_count
    from asd_utils.config import load_config
    from asd_utils.methods import myps
    from asd_utils.training import Trainer

    torch.set_num_threads(int(spec["threads"]))
    profile = "default" if spec["size"] == "tiny" else "paper"
    cfg = load_config("03_myps", profile)
    eat_cfg = {**cfg["eat"], "size": spec["size"], "target_length": "auto" if spec["size"] == "tiny" else None}
    variant = cfg["variants"][spec["variant"]]
    sr = int(cfg["sample_rate"])
    crop = int(round(spec["seconds"] * sr))
    model, _ = myps.build_model(eat_cfg, variant["finetune"], checkpoint=None, crop_samples=crop, seed=0)
    n_classes = 60
    head = myps.make_head(n_classes, model.dim, cfg["arcface"])
    trainable = trainable_parameter_count(model) + trainable_parameter_count(head)
    total = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in head.parameters())
    gen = torch.Generator().manual_seed(0)
    batches = [(0.1 * torch.randn(spec["batch"], crop, generator=gen),
                torch.randint(0, n_classes, (spec["batch"],), generator=gen)) for _ in range(spec["steps"] + 1)]
    trainer = Trainer(model, head, {**variant["optimizer"], "lr": variant["learning_rates"][0]}, {"name": "constant"},
                      len(batches), progress=False)
    times = []
    for i, batch in enumerate(batches):  # an "epoch" of one batch = one optimizer step
        start = time.perf_counter()
        trainer.fit([batch], until_epoch=i + 1)
        times.append(time.perf_counter() - start)
    return {
        "size": spec["size"], "variant": spec["variant"], "batch": spec["batch"], "crop_seconds": spec["seconds"],
        "lora": variant["finetune"] if variant["finetune"]["mode"] == "lora" else None,
        "trainable_parameters": int(trainable), "total_parameters": int(total),
        "seconds_per_step": float(np.median(times[1:])), "warmup_seconds": float(times[0]),
        "timed_steps": len(times) - 1,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "base"])
    parser.add_argument("--variants", nargs="+", default=["EAT-LoRA", "EAT-FFT"])
    parser.add_argument("--out", default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    from asd_utils import paths
    from asd_utils.storage.atomic import atomic_write_json

    out = args.out or str(paths.project_root() / "benchmarks" / "results" / "03_myps.json")
    rows = []
    for size, variant, batch, seconds, steps in CASES:
        if size not in args.sizes or variant not in args.variants:
            continue
        spec = {"size": size, "variant": variant, "batch": batch, "seconds": seconds, "steps": steps,
                "threads": args.threads}
        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        if done.returncode != 0:  # e.g. killed for memory on a shared machine: record it, go on
            rows.append({"size": size, "variant": variant, "batch": batch, "crop_seconds": seconds,
                         "error": f"child exited with {done.returncode}: {done.stderr.strip()[-300:]}"})
            print(f"{size:5s} {variant:9s} failed: exit {done.returncode}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{size:5s} {variant:9s} batch {batch:3d} x {seconds:4.1f} s: {row['seconds_per_step']:8.3f} s/step, "
              f"trainable {row['trainable_parameters']:>11,} of {row['total_parameters']:>11,}, "
              f"peak RSS {row['peak_rss_mib']:8.1f} MiB")
    import torch

    atomic_write_json(out, {
        "benchmark": "03_myps_eat_lora_fft_knn: one training step, EAT-LoRA vs EAT-FFT",
        "device": "cpu", "threads": args.threads, "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "torch": torch.__version__,
        "weights": "random initialisation (the timing and memory do not depend on the values)",
        "cases": rows,
    })
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
