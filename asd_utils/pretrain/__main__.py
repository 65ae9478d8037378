"""Pretrain the compendium's stand-in backbones.

    python -m asd_utils.pretrain [--profile default] [--data-root ROOT] [--models beats eat wav2vec2]

Each model that ``configs/standins.yaml`` marks ``pretrained`` for the profile is pretrained
(unless cached) through :func:`asd_utils.pretrain.standins.standin_checkpoint`, the same hook the
notebooks call, and a line per model gives its checkpoint, wall and CPU seconds, and the final
training / held-out losses. Models the profile leaves untrained (or ``never``) are listed as such.
"""

from __future__ import annotations

import argparse
import sys
import time

from asd_utils.pretrain.registry import PRETRAINABLE, read_history
from asd_utils.pretrain.standins import standin_checkpoint, standin_mode


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="python -m asd_utils.pretrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="default", choices=["smoke", "default", "paper"])
    parser.add_argument("--data-root", default=None,
                        help="a synthetic root to pretrain on (default: the profile's synthetic dataset)")
    parser.add_argument("--models", nargs="+", default=list(PRETRAINABLE), choices=list(PRETRAINABLE))
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    total = time.perf_counter()
    for name in args.models:
        mode = standin_mode(name, args.profile)
        if mode != "pretrained":
            print(f"{name}: {mode} in profile {args.profile} (configs/standins.yaml): nothing to pretrain")
            continue
        start, cpu = time.perf_counter(), time.process_time()
        path = standin_checkpoint(name, profile=args.profile, data_root=args.data_root,
                                  progress=not args.no_progress)
        folder = path if path.is_dir() else path.parent
        h = read_history(folder)
        held = f", held-out loss {h['eval_loss'][0]:.3f} -> {h['eval_loss'][-1]:.3f}" if h["eval_loss"] else ""
        print(f"{name}: {path} ({time.perf_counter() - start:.1f} s wall, {time.process_time() - cpu:.1f} s CPU "
              f"in this call; training {h['wall_seconds']:.1f} s wall / {h['cpu_seconds']:.1f} s CPU; "
              f"loss {h['loss'][0]:.3f} -> {h['loss'][-1]:.3f}{held})", flush=True)
    print(f"done in {time.perf_counter() - total:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
