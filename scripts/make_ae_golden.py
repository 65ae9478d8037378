"""Make the AE-baseline golden fixture from the official code (not part of the project).

How the fixture was made (once; the output is committed, the official code is not):

    git clone https://github.com/nttcslab/dcase2023_task2_baseline_ae path/to/baseline_ae
    python scripts/make_ae_golden.py --official-dir path/to/baseline_ae

The script imports the official modules from ``--official-dir`` (the only stand-in is a no-op
``fasteners`` lock module, a dependency of the official loader that this project does not
install) and runs them unchanged on a tiny synthetic machine type written as DCASE files
(``dcase2025t2/dev_data/raw/ToyCar/{train,test}``, 32-bit float WAV so the samples are exact):

1. ``datasets.loader_common.file_to_vectors`` (``n_mels`` 128) on one 0.3 s clip whose first half
   is digital silence, so the official log-mel floor ``max(mel, float eps)`` is exercised;
2. the official data module ``datasets.datasets.DCASE202XT2`` (10 % validation hold-out by
   ``train_test_split``, shuffled training loader) and ``DCASE2023T2AE.train`` for ``EPOCHS``
   epochs plus its covariance epoch, with ``n_mels`` 16 (so the network stays small; the
   architecture is the official one, ``AENet(input_dim=80, block_size=16)``), seeded as the
   official ``train.py``; the order of the training loader in the covariance epoch is recorded;
3. ``DCASE2023T2AE.eval`` with ``--score MSE`` and ``--score MAHALA`` on the test clips.

Output ``tests/fixtures/ae_official_tiny.npz``: ``logmel_wave`` (4800,), ``logmel_vectors``
(6, 640); ``train_vectors`` (N, 80) float32 and ``train_is_target`` (N,) in the official
dataset order, ``train_index`` / ``valid_index`` (the hold-out), ``cov_order`` (the covariance
epoch's vector order) and ``batch_size``; ``param:<name>`` for every tensor of the official
``AENet`` state dict (``cov_source`` / ``cov_target`` included); ``inv_cov_source`` /
``inv_cov_target`` (official ``calc_inv_cov``); ``test_vectors`` (clips, vectors, 80),
``test_names``, ``test_mse`` and ``test_mahala`` (the official per-clip scores).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "fixtures" / "ae_official_tiny.npz"
SR = 16000
EPOCHS = 10
N_MELS = 16
BATCH_SIZE = 32
SEED = 13711  # the official baseline.yaml seed


def _install_fake_fasteners() -> None:
    """The official loader takes inter-process file locks; one process needs none."""

    class InterProcessReaderWriterLock:
        def __init__(self, path):
            self.path = path

        def acquire_write_lock(self):
            return True

        def acquire_read_lock(self):
            return True

        def release_write_lock(self):
            pass

        def release_read_lock(self):
            pass

    module = types.ModuleType("fasteners")
    module.InterProcessReaderWriterLock = InterProcessReaderWriterLock
    sys.modules["fasteners"] = module


def _clip(rng: np.random.Generator, seconds: float, f0: float, anomaly: bool) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.1 * np.sin(2 * np.pi * f0 * t) + 0.05 * np.sin(2 * np.pi * 3 * f0 * t + 1.0)
    gate = np.repeat(rng.random(int(np.ceil(t.size / 1024))) < 0.6, 1024)[: t.size]  # on/off bursts
    wave = wave * gate + 0.001 * rng.standard_normal(t.size)
    if anomaly:
        wave += 0.05 * np.sin(2 * np.pi * 2300 * t) * (t > 0.2)
    return wave.astype(np.float32)


def write_tiny_machine(root: Path, seed: int = 0) -> None:
    """10 source + 4 target training clips, 2 normal + 2 anomalous test clips per domain (0.5 s
    of tones gated on and off, so residual frames vary strongly within a clip)."""
    rng = np.random.default_rng(seed)
    base = root / "dcase2025t2" / "dev_data" / "raw" / "ToyCar"
    for split in ("train", "test"):
        (base / split).mkdir(parents=True, exist_ok=True)
    for i in range(14):
        domain = "source" if i < 10 else "target"
        wave = _clip(rng, 0.5, 200.0 if domain == "source" else 260.0, anomaly=False)
        sf.write(base / "train" / f"section_00_{domain}_train_normal_{i:04d}_a_{i % 2}.wav", wave, SR, subtype="FLOAT")
    for i, (domain, label) in enumerate([(d, lab) for d in ("source", "target") for lab in ("normal", "normal",
                                                                                             "anomaly", "anomaly")]):
        wave = _clip(rng, 0.5, 200.0 if domain == "source" else 260.0, anomaly=label == "anomaly")
        sf.write(base / "test" / f"section_00_{domain}_test_{label}_{i:04d}_a_0.wav", wave, SR, subtype="FLOAT")


class _RecordingLoader:
    """Wraps the official training loader and records the dataset indices of every pass."""

    def __init__(self, loader):
        self.loader, self.dataset, self.passes = loader, loader.dataset, []

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        order = []
        self.passes.append(order)
        for batch in self.loader:
            order.append(batch[4].numpy().copy())
            yield batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-dir", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args_cli = parser.parse_args()
    official = args_cli.official_dir.resolve()
    out = args_cli.out.resolve()
    _install_fake_fasteners()
    sys.path.insert(0, str(official))
    os.chdir(official)  # the official code reads baseline.yaml and datasets/*.yaml from the cwd
    import common as com
    from datasets import loader_common
    from datasets.datasets import DCASE202XT2
    from networks.criterion.mahala import calc_inv_cov
    from networks.dcase2023t2_ae.dcase2023t2_ae import DCASE2023T2AE

    fixture: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. the official log-mel vectors of a clip that starts with digital silence
        rng = np.random.default_rng(1)
        wave = _clip(rng, 0.3, 440.0, anomaly=False)
        wave[: len(wave) // 2] = 0.0
        sf.write(tmp / "silence.wav", wave, SR, subtype="FLOAT")
        fixture["logmel_wave"] = wave
        fixture["logmel_vectors"] = loader_common.file_to_vectors(
            str(tmp / "silence.wav"), n_mels=128, n_frames=5, n_fft=1024, hop_length=512, power=2.0, fmax=None,
            fmin=0.0, win_length=None).astype(np.float32)

        # 2. the official data module and training on a tiny machine type
        write_tiny_machine(tmp)
        parser = com.get_argparse()
        args = parser.parse_args(args=com.param_to_args_list(com.yaml_load()))
        args = parser.parse_args(
            ["--dataset", "DCASE2025T2ToyCar", "--dev", "--epochs", str(EPOCHS), "--n_mels", str(N_MELS),
             "--batch_size", str(BATCH_SIZE), "--dataset_directory", os.path.relpath(tmp, official),
             "--use_cuda", "False", "--seed", str(SEED)], namespace=args)
        args.cuda = False
        random.seed(args.seed)
        np.random.seed(args.seed)
        torch.manual_seed(args.seed)
        data = DCASE202XT2(args)
        net = object.__new__(DCASE2023T2AE)  # BaseModel.__init__ only sets up folders and logs
        net.args, net.data, net.device, net.epoch = args, data, torch.device("cpu"), 0
        net.train_loader = _RecordingLoader(data.train_loader)
        net.valid_loader, net.test_loader = data.valid_loader, data.test_loader
        net.model = net.init_model()
        net.optimizer = torch.optim.Adam([{"params": net.model.parameters()}], lr=args.learning_rate)
        net.log_path = tmp / "log.csv"
        np.savetxt(net.log_path, [net.get_log_header()], fmt="%s")
        net.model_path, net.checkpoint_path = tmp / "model.pth", tmp / "checkpoint.tar"
        net.mse_score_distr_file_path = tmp / "score_distr_mse.pickle"
        net.mahala_score_distr_file_path = tmp / "score_distr_mahala.pickle"
        for epoch in range(1, args.epochs + 2):
            net.train(epoch)

        train_data = data.train_dataset.dataset
        fixture["train_vectors"] = train_data.data.astype(np.float32)
        names = np.array(train_data.basenames)[np.arange(len(train_data.data)) // train_data.n_vectors_ea_file]
        fixture["train_is_target"] = np.array(["target" in n for n in names])
        fixture["train_index"] = np.asarray(data.train_dataset.indices)
        fixture["valid_index"] = np.asarray(data.valid_dataset.indices)
        fixture["cov_order"] = np.concatenate(net.train_loader.passes[args.epochs])  # the covariance epoch
        fixture["batch_size"] = np.array(args.batch_size)
        for name, tensor in net.model.state_dict().items():
            fixture[f"param:{name}"] = tensor.numpy()
        inv_source, inv_target = calc_inv_cov(model=net.model, device="cpu")
        fixture["inv_cov_source"], fixture["inv_cov_target"] = inv_source.numpy(), inv_target.numpy()

        # 3. the official per-clip test scores
        net.model.eval()
        test_set = data.test_loader[0].dataset
        fixture["test_vectors"] = test_set.data.astype(np.float32).reshape(len(test_set.basenames), -1, N_MELS * 5)
        fixture["test_names"] = np.array(test_set.basenames)
        for score in ("MSE", "MAHALA"):
            net.args.score = score
            with torch.no_grad():
                y_pred, *_ = net.eval(test_loader=data.test_loader[0], y_pred=[], anomaly_score_list=[],
                                      decision_result_list=[], domain_list=[], y_true=[], decision_threshold=0.0,
                                      mode=True, inv_cov_source=inv_source, inv_cov_target=inv_target)
            fixture[f"test_{score.lower()}"] = np.asarray(y_pred, dtype=np.float64)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **fixture)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
