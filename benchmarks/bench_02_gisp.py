"""Benchmark of notebook 02 (GISP-HEU Systems 1-4): wall time and peak memory per system and phase.

Phases: ``extraction`` (GenRep embeddings + audio statistics; AnoPatch embeddings), ``fitting``
(GISP distributions and memory banks; AnoPatch fine-tuning and kNN banks), ``scoring`` (test clips
and leave-one-out training scores; the ensemble). The whole benchmark runs twice on the same cache
folder: the first run starts cold, the second finds the cached embeddings / audio statistics and the
finished AnoPatch checkpoint, so its extraction (and AnoPatch fine-tuning) is skipped.

Peak memory is the peak resident set size of this process during the phase (sampled every 20 ms;
``rss_increase_mib``: above the level at the phase start), and the CUDA peak allocation on a GPU.

    .venv/bin/python benchmarks/bench_02_gisp.py [--profile default] [--device auto] [--out PATH]

Writes ``benchmarks/results/02_gisp.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from asd_utils import paths
from asd_utils.backbones import load_backbone
from asd_utils.config import load_config
from asd_utils.data import discover
from asd_utils.device import resolve_device
from asd_utils.methods import anopatch, gisp
from asd_utils.storage.atomic import atomic_write_json

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except OSError:  # not Linux: fall back to the lifetime peak
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


@contextlib.contextmanager
def measure(record: dict, key: str, device: torch.device):
    """Time a block and sample its peak RSS (and CUDA peak) into ``record[key]``."""
    before = _rss_bytes()
    peak = [before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    thread.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        stop.set()
        thread.join()
        top = max(peak[0], _rss_bytes())
        entry = {"seconds": round(seconds, 3), "peak_rss_mib": round(top / 2**20, 1),
                 "rss_increase_mib": round((top - before) / 2**20, 1)}
        if device.type == "cuda":
            entry["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        record[key] = entry


def _gisp_phase(clips, emb, audio, cfg, record, system, device, supplemental=False):
    """Fit and score one GISP system (per machine type), timing fitting and scoring separately."""
    index = clips.reset_index(drop=True)
    machine = index["machine"].astype(str).to_numpy()
    split = index["split"].to_numpy()
    fitted = []
    with measure(record, f"{system}/fitting", device):
        for m in sorted(set(machine[split == "train"])):
            tr = np.flatnonzero((machine == m) & (split == "train"))
            extra = np.zeros(0, dtype=np.int64)
            if supplemental:
                kind = index["supplemental_kind"]
                extra = np.flatnonzero((machine == m) & (split == "supplemental")
                                       & kind.isin(cfg["system2"]["supplemental_kinds"]).to_numpy())
            model = gisp.GISPSystem(knn=dict(cfg["genrep"]["knn"]), weighting=dict(cfg["weighting"])).fit(
                emb[tr], index["domain"].iloc[tr].tolist(), audio[tr],
                extra_emb=emb[extra] if len(extra) else None, extra_audio=audio[extra] if len(extra) else None)
            fitted.append((m, model))
    with measure(record, f"{system}/scoring", device):
        for m, model in fitted:
            te = np.flatnonzero((machine == m) & (split == "test"))
            model.score(emb[te], audio[te])


def run_once(cfg: dict, root: Path, cache: Path, device: torch.device, seed: int) -> dict:
    record: dict = {}
    index = discover(root)
    clips = index[index["split"].isin(["train", "test", "supplemental"])].reset_index(drop=True)
    clip_samples = gisp.clip_samples_of(index, cfg["clip_seconds"], cfg["sample_rate"])
    with measure(record, "Systems 1-2/extraction", device):
        backbone = load_backbone(cfg["genrep"]["backbone"], size=cfg["genrep"]["size"], device=device, seed=seed)
        emb, audio = gisp.extract_frontend(backbone, clips, layer=cfg["genrep"]["layer"], clip_samples=clip_samples,
                                           audio_features=cfg["audio_features"],
                                           batch_size=cfg["genrep"]["batch_size"], cache_dir=cache / "frontend",
                                           device=device, progress=False)
    _gisp_phase(clips, emb, audio, cfg, record, "System-1", device)
    _gisp_phase(clips, emb, audio, cfg, record, "System-2", device, supplemental=True)
    s1 = gisp.score_machines(clips, emb, audio, knn=cfg["genrep"]["knn"], weighting=cfg["weighting"],
                             progress=False)["weighted"]
    s2 = gisp.score_machines(clips, emb, audio, knn=cfg["genrep"]["knn"], weighting=cfg["weighting"],
                             supplemental_kinds=cfg["system2"]["supplemental_kinds"], progress=False)["weighted"]

    ap_cfg = cfg["anopatch"]
    ap_samples = gisp.clip_samples_of(index, ap_cfg["clip_seconds"], cfg["sample_rate"])
    ap_clips = clips[clips["split"].isin(["train", "test"])].reset_index(drop=True)
    train = ap_clips[ap_clips["split"] == "train"]
    # fine-tuning (fitting) and embedding (extraction) are timed apart: first embed nothing new
    with measure(record, "System-3/fitting (fine-tuning)", device):
        anopatch.train_and_embed(ap_cfg, train, train.iloc[:1], checkpoint=None, clip_samples=ap_samples,
                                 device=device, seed=seed, cache_dir=cache / "anopatch", progress=False)
    with measure(record, "System-3/extraction", device):
        ap_emb, _, _ = anopatch.train_and_embed(ap_cfg, train, ap_clips, checkpoint=None, clip_samples=ap_samples,
                                                device=device, seed=seed, cache_dir=cache / "anopatch",
                                                progress=False)
    with measure(record, "System-3/fitting+scoring (kNN)", device):
        t_idx, t_s, r_idx, r_s = anopatch.score_machines(ap_clips, ap_emb, knn=ap_cfg["knn"], progress=False)
    s3 = gisp.SystemScores("System-3", t_idx, t_s, r_idx, r_s)
    with measure(record, "System-4/scoring (ensemble)", device):
        gisp.ensemble_by_machine([s1, s2, s3], cfg["ensemble"]["weights"])
    record["clips"] = {"train": int((clips["split"] == "train").sum()), "test": int((clips["split"] == "test").sum()),
                       "supplemental": int((clips["split"] == "supplemental").sum()),
                       "machines": int(clips["machine"].nunique()), "clip_samples": clip_samples}
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(paths.project_root() / "benchmarks" / "results" / "02_gisp.json"))
    args = parser.parse_args(argv)
    cfg = load_config("02_gisp_heu", args.profile)
    device = resolve_device(args.device)
    if args.data_root:
        root = Path(args.data_root)
    else:
        from asd_utils.synth import ensure_dataset

        root = ensure_dataset(args.profile, seed=int(cfg.get("synth_seed", 0)))
    cache = Path(tempfile.mkdtemp(prefix="bench02_"))
    try:
        torch.manual_seed(args.seed)
        cold = run_once(cfg, root, cache, device, args.seed)
        warm = run_once(cfg, root, cache, device, args.seed)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    result = {
        "benchmark": "02_gisp_heu_beats_statistical_weighting",
        "profile": args.profile,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "backbones": "untrained stand-ins (no checkpoint)",
        "cold_cache": cold,
        "warm_cache": warm,
    }
    atomic_write_json(args.out, result)
    for name, run in (("cold", cold), ("warm", warm)):
        print(f"== {name} cache")
        for key, value in run.items():
            if isinstance(value, dict) and "seconds" in value:
                print(f"  {key:34s} {value['seconds']:9.2f} s  peak RSS {value['peak_rss_mib']:8.1f} MiB"
                      f" (+{value['rss_increase_mib']:.1f})")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
