"""Time and memory of pretraining each stand-in (issue 14) at the ``default`` configuration.

For each model (BEATs, EAT, wav2vec 2.0) a fresh process runs exactly what
``asd_utils.pretrain.standins.standin_checkpoint(name, profile="default")`` runs on a cold cache
(read the corpus, compute the model's front end, pretrain, save in the published format, reload and
compare), into a temporary folder (the compendium's cache is not touched). Recorded per model: wall
seconds, process CPU seconds (all threads), peak resident memory (MiB), the training part alone
(wall / CPU), steps and the final losses.

    python benchmarks/bench_pretrain.py [--models beats eat wav2vec2] [--threads 2] [--steps N]

``--steps`` overrides the configured steps (quick look; the JSON then says so). Writes
``benchmarks/results/pretrain.json`` atomically (merged per model with earlier results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "pretrain.json"


def child(name: str, threads: int, steps: int | None) -> dict:
    """Run one cold pretraining in this process and return its measurements."""
    import torch

    torch.set_num_threads(threads)
    from asd_utils.pretrain.corpus import build_corpus, corpus_root
    from asd_utils.pretrain.run import pretrain_standin, read_history
    from asd_utils.pretrain.standins import _marker, standin_folder, standins_config

    wall0, cpu0 = time.perf_counter(), time.process_time()
    config = standins_config("default")
    cfg = dict(config["pretraining"][name])
    if steps:
        cfg["steps"] = int(steps)
    corpus = build_corpus(corpus_root("default", progress=False))
    seed = int(config.get("seed", 0))
    key = standin_folder(name, cfg, seed, corpus).name
    with tempfile.TemporaryDirectory() as tmp:
        pretrain_standin(name, cfg, corpus, Path(tmp) / key, marker=_marker(name, cfg, seed, corpus, key),
                         seed=seed, progress=False)
        history = read_history(Path(tmp) / key)
    return {
        "model": name, "corpus_clips": len(corpus), "steps": len(history["loss"]),
        "steps_overridden": bool(steps), "threads": threads,
        "wall_s": round(time.perf_counter() - wall0, 1), "cpu_s": round(time.process_time() - cpu0, 1),
        "train_wall_s": round(history["wall_seconds"], 1), "train_cpu_s": round(history["cpu_seconds"], 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loss_first": round(history["loss"][0], 4), "loss_last": round(history["loss"][-1], 4),
        "heldout_loss_first": round(history["eval_loss"][0], 4) if history["eval_loss"] else None,
        "heldout_loss_last": round(history["eval_loss"][-1], 4) if history["eval_loss"] else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["beats", "eat", "wav2vec2"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.threads, args.steps)), flush=True)
        return {}
    import torch

    from asd_utils.storage.atomic import atomic_write_json

    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results = dict(previous.get("results", {}))
    for name in args.models:
        cmd = [sys.executable, __file__, "--child", name, "--threads", str(args.threads)]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(results[name]), flush=True)
    payload = {
        "benchmark": "pretrain_standins_default",
        "cpu_count": os.cpu_count(), "device": "cpu", "processor": platform.machine(), "torch": torch.__version__,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "note": ("cold pretraining of each stand-in at the default configuration, one process each; wall times "
                 "on a shared machine are inflated by its load, cpu_s is the process CPU time of all threads"),
        "results": results,
    }
    atomic_write_json(RESULTS, payload)
    return payload


if __name__ == "__main__":
    main()
