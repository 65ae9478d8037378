"""``python -m asd_utils.synth OUT --profile smoke|default|full [--seed N] [--names A,B,...] [--variant V]
[--layout dcase2026]``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from asd_utils.synth.generate import DEFAULT_VARIANT, PROFILES, VARIANTS, ensure_dataset
from asd_utils.synth.machines import MACHINE_TYPES
from asd_utils.synth.two_channel import ensure_two_channel_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m asd_utils.synth",
                                     description="Generate the synthetic DCASE-format dataset.")
    parser.add_argument("out", type=Path, help="output folder (replaced atomically when stale)")
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--names", default=None,
                        help=f"comma-separated new names for the types {','.join(MACHINE_TYPES)} (or --types)")
    parser.add_argument("--types", default=None, help="comma-separated subset of the machine types")
    parser.add_argument("--variant", default=DEFAULT_VARIANT, choices=VARIANTS,
                        help="envelope: each type's own anomalies colouring the clip; realistic: intermittent"
                             " faults, rooms, low SNRs, level-normalised clips (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--layout", default="dcase2025", choices=["dcase2025", "dcase2026"],
                        help="dcase2025: mono clips (default); dcase2026: two-channel near/far clips, no "
                             "supplemental folder (asd_utils.synth.two_channel)")
    args = parser.parse_args(argv)
    machines = args.types.split(",") if args.types else None
    names = args.names.split(",") if args.names else None
    start = time.perf_counter()
    try:
        ensure = ensure_two_channel_dataset if args.layout == "dcase2026" else ensure_dataset
        root = ensure(args.profile, args.out, args.seed, names=names, machines=machines,
                      workers=args.workers, progress=not args.quiet, variant=args.variant)
    except ValueError as err:
        parser.error(str(err))
    print(f"synthetic dataset ready in {root} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
