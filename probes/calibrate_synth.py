"""Scratch calibration of the synthetic dataset's difficulty (not part of the test suite).

Renders (in memory) or reads the ``default`` profile and scores it with cheap proxies of the
official autoencoder baseline, fitted on training clips only:

- ``maha``: per-clip log-mel (128 mels, n_fft 1024, hop 512) mean and std over time, Mahalanobis
  distance with Ledoit-Wolf shrinkage;
- ``pca``: PCA reconstruction error of the 5-frame stacked log-mel vectors (a linear AE), clip
  score = mean frame error.

Prints AUC-source, AUC-target, pAUC (max_fpr 0.1) per machine type and the harmonic mean, with
the official definitions (source AUC: source normals + all anomalies). With ``--ae`` it also
runs ``asd_utils.methods.baseline_ae`` when that module exists.

    python probes/calibrate_synth.py [--root DIR] [--types fan,valve] [--seed 0]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import librosa
import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asd_utils.synth.generate import PROFILES, plan_machine, render_job, to_pcm16  # noqa: E402
from asd_utils.synth.machines import MACHINE_TYPES  # noqa: E402

SR = 16000


def logmel(wave: np.ndarray) -> np.ndarray:
    """(frames, 128) log-mel power in dB-like units (10 log10), as the official baseline."""
    mel = librosa.feature.melspectrogram(y=wave.astype(np.float32), sr=SR, n_fft=1024, hop_length=512,
                                         n_mels=128, power=2.0)
    return (10.0 / np.log(10.0)) * np.log(mel.T + 1e-10)


def _features(args):
    job, duration, path = args
    if path is not None:
        import soundfile as sf

        wave, _ = sf.read(path, dtype="float32")
    else:
        wave = to_pcm16(render_job(job, duration)["mix"]).astype(np.float32) / 32767.0
    lm = logmel(wave)
    stacked = np.concatenate([lm[i:len(lm) - 4 + i] for i in range(5)], axis=1)
    return np.concatenate([lm.mean(0), lm.std(0)]), stacked[::2].astype(np.float32)


def metrics(domain, is_anom, score):
    domain, is_anom, score = map(np.asarray, (domain, is_anom, score))
    out = {}
    for d in ("source", "target"):
        sel = (is_anom == 1) | (domain == d)
        out[f"auc_{d}"] = roc_auc_score(is_anom[sel], score[sel])
    out["pauc"] = roc_auc_score(is_anom, score, max_fpr=0.1)
    return out


def hmean(values):
    values = np.maximum(np.asarray(values, float), np.finfo(float).eps)
    return len(values) / np.sum(1.0 / values)


def run(types, seed, root, workers):
    prof = PROFILES["default"]
    rows = {}
    with multiprocessing.get_context().Pool(workers) as pool:
        for key in types:
            t0 = time.perf_counter()
            jobs = [j for j in plan_machine(key, key, prof, seed) if j.split != "supplemental"]
            paths = [str(Path(root) / j.relpath) if root else None for j in jobs]
            feats = pool.map(_features, [(j, prof.duration, p) for j, p in zip(jobs, paths)], chunksize=8)
            stats = np.stack([f[0] for f in feats])
            train = np.array([j.split == "train" for j in jobs])
            test = ~train
            dom = np.array([j.domain for j in jobs])[test]
            lab = np.array([j.label == "anomaly" for j in jobs], int)[test]
            # Mahalanobis on mean+std
            mu = stats[train].mean(0)
            sd = stats[train].std(0) + 1e-6
            z = (stats - mu) / sd
            lw = LedoitWolf().fit(z[train])
            s_maha = lw.mahalanobis(z[test])
            # PCA reconstruction of stacked frames (linear AE proxy)
            frames_train = np.concatenate([f[1] for f, tr in zip(feats, train) if tr])
            fm, fs = frames_train.mean(0), frames_train.std(0) + 1e-6
            pca = PCA(n_components=16, random_state=0).fit((frames_train - fm) / fs)
            s_pca = []
            for f, tr in zip(feats, train):
                if not tr:
                    x = (f[1] - fm) / fs
                    rec = pca.inverse_transform(pca.transform(x))
                    s_pca.append(np.mean((x - rec) ** 2))
            rows[key] = {"maha": metrics(dom, lab, s_maha), "pca": metrics(dom, lab, np.array(s_pca))}
            # per anomaly kind AUC (maha) vs all normals
            kinds = np.array([j.anomaly or "" for j in jobs])[test]
            per_kind = {}
            for k in sorted(set(kinds) - {""}):
                sel = (lab == 0) | (kinds == k)
                per_kind[k] = roc_auc_score(lab[sel], s_maha[sel])
            rows[key]["kinds"] = per_kind
            r = rows[key]
            print(f"{key:9s} maha src {r['maha']['auc_source']:.3f} tgt {r['maha']['auc_target']:.3f} "
                  f"pauc {r['maha']['pauc']:.3f} | pca src {r['pca']['auc_source']:.3f} "
                  f"tgt {r['pca']['auc_target']:.3f} pauc {r['pca']['pauc']:.3f} | "
                  + " ".join(f"{k}={v:.2f}" for k, v in per_kind.items())
                  + f"  ({time.perf_counter() - t0:.0f}s)", flush=True)
    for m in ("maha", "pca"):
        vals = [v for r in rows.values() for v in r[m].values()]
        src = np.mean([r[m]["auc_source"] for r in rows.values()])
        tgt = np.mean([r[m]["auc_target"] for r in rows.values()])
        print(f"{m}: official hmean {hmean(vals):.3f}  mean AUC src {src:.3f} tgt {tgt:.3f}")
    return rows


def run_ae(root, epochs, seed):
    """The lead's official AE baseline (asd_utils.methods.baseline_ae) on a generated dataset folder."""
    from asd_utils.data import discover
    from asd_utils.evaluation.metrics import evaluate, official_score
    from asd_utils.methods.baseline_ae import AEConfig, run_autoencoder_baseline

    index = discover(root)
    out = run_autoencoder_baseline(index, AEConfig(epochs=epochs), seed=seed, progress=False)
    for system, scores in out["scores"].items():
        table = evaluate(out["test_index"], scores)
        print(system, f"official {official_score(table):.3f}")
        print(table.round(3).to_string(index=False))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--types", default=",".join(MACHINE_TYPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=None, help="read WAVs from a generated default dataset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ae", action="store_true", help="run asd_utils.methods.baseline_ae on --root")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    if args.ae:
        run_ae(args.root, args.epochs, args.seed)
        return
    run(args.types.split(","), args.seed, args.root, args.workers)


if __name__ == "__main__":
    main()
