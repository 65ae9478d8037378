"""The official DCASE 2023-2025 Task 2 autoencoder baseline: AE-MSE and AE-MAHALA.

Harada et al., "First-shot anomaly sound detection for machine condition monitoring: a domain
generalization baseline", EUSIPCO 2023. Front end: log-mel (128 bins, n_fft 1024, hop 512),
5 consecutive frames stacked into a 640-d vector. Model: a fully connected autoencoder
640-128-128-128-128-8-128-128-128-128-640 with BatchNorm (momentum 0.01, eps 1e-3) and ReLU after
every layer but the last, trained with MSE (Adam, lr 1e-3, batch 256). One model per machine type.

Scores per clip (higher = more anomalous):
- ``mse``: mean over the clip's vectors of the mean squared reconstruction error;
- ``mahala``: mean over vectors of the Mahalanobis distance of the residual ``x - x_hat`` under
  the residual covariance of the source training clips, and separately of the target training
  clips; the clip score is the minimum of the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from asd_utils.features import log_mel, stack_frames


@dataclass
class AEConfig:
    """Hyper-parameters of the baseline (defaults = the official values)."""

    n_mels: int = 128
    n_fft: int = 1024
    hop_length: int = 512
    n_frames: int = 5
    hidden: int = 128
    bottleneck: int = 8
    n_hidden_layers: int = 4
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    bn_momentum: float = 0.01
    bn_eps: float = 1e-3
    covariance_ridge: float = 1e-6

    @property
    def input_dim(self) -> int:
        return self.n_mels * self.n_frames


class BaselineAE(nn.Module):
    """Dense autoencoder: input_dim -> hidden x n -> bottleneck -> hidden x n -> input_dim."""

    def __init__(self, config: AEConfig):
        super().__init__()

        def block(n_in: int, n_out: int) -> list[nn.Module]:
            return [
                nn.Linear(n_in, n_out),
                nn.BatchNorm1d(n_out, momentum=config.bn_momentum, eps=config.bn_eps),
                nn.ReLU(),
            ]

        layers: list[nn.Module] = []
        dims = [config.input_dim] + [config.hidden] * config.n_hidden_layers + [config.bottleneck]
        for n_in, n_out in zip(dims[:-1], dims[1:]):
            layers += block(n_in, n_out)
        dims = [config.bottleneck] + [config.hidden] * config.n_hidden_layers
        for n_in, n_out in zip(dims[:-1], dims[1:]):
            layers += block(n_in, n_out)
        layers.append(nn.Linear(config.hidden, config.input_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, input_dim) -> reconstruction (batch, input_dim)."""
        return self.net(x)


def clip_vectors(waves: np.ndarray | torch.Tensor, config: AEConfig, batch_size: int = 64) -> torch.Tensor:
    """waves (clips, samples) at 16 kHz -> stacked log-mel vectors (clips, positions, input_dim)."""
    x = torch.as_tensor(waves, dtype=torch.float32)
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            mel = log_mel(x[start : start + batch_size], n_fft=config.n_fft, hop_length=config.hop_length,
                          n_mels=config.n_mels)
            out.append(stack_frames(mel, config.n_frames))
    return torch.cat(out)


def _mahalanobis_mean(residuals: torch.Tensor, cov_inv: torch.Tensor) -> torch.Tensor:
    """residuals (clips, positions, D), cov_inv (D, D) -> per clip mean Mahalanobis distance."""
    r = residuals.to(torch.float64)
    squared = torch.einsum("cpd,de,cpe->cp", r, cov_inv, r).clamp_min(0.0)
    return squared.sqrt().mean(dim=1)


class AutoencoderBaseline:
    """AE-MSE and AE-MAHALA for one machine type (scikit-learn style).

    ``fit(train_vectors, domains)`` trains the AE and the residual covariances;
    ``score(vectors)`` returns ``{"mse": (clips,), "mahala": (clips,)}``.
    """

    def __init__(self, config: AEConfig | None = None, *, seed: int = 0, device: str | torch.device = "cpu",
                 progress: bool = True):
        self.config = config or AEConfig()
        self.seed = seed
        self.device = torch.device(device)
        self.progress = progress

    # -- training -----------------------------------------------------------------------------
    def fit(self, vectors: torch.Tensor, domains) -> AutoencoderBaseline:
        """vectors: (clips, positions, input_dim) of normal training clips; domains: (clips,)
        'source'/'target'. Trains the AE on every vector, then the residual covariances."""
        cfg = self.config
        domains = np.asarray(domains)
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.model_ = BaselineAE(cfg).to(self.device)
        flat = vectors.reshape(-1, cfg.input_dim)
        optimizer = torch.optim.Adam(self.model_.parameters(), lr=cfg.lr)
        self.loss_history_ = []
        epochs = range(cfg.epochs)
        bar = tqdm(epochs, desc="AE epochs", leave=False, disable=not self.progress)
        self.model_.train()
        for _ in bar:
            order = torch.randperm(len(flat), generator=generator)
            total, count = 0.0, 0
            for start in range(0, len(flat), cfg.batch_size):
                batch = flat[order[start : start + cfg.batch_size]].to(self.device)
                if len(batch) < 2:  # BatchNorm needs two samples in training mode
                    continue
                loss = torch.mean((self.model_(batch) - batch) ** 2)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
                count += len(batch)
            self.loss_history_.append(total / max(count, 1))
            bar.set_postfix(loss=f"{self.loss_history_[-1]:.3f}")
        self.model_.eval()
        residuals = self._residuals(vectors)
        self.cov_inv_ = {}
        for domain in ("source", "target"):
            mask = domains == domain
            if not mask.any():
                continue
            r = residuals[torch.from_numpy(mask)].reshape(-1, cfg.input_dim).to(torch.float64)
            cov = torch.cov(r.T) + cfg.covariance_ridge * torch.eye(cfg.input_dim, dtype=torch.float64)
            self.cov_inv_[domain] = torch.linalg.pinv(cov, hermitian=True)
        return self

    def _residuals(self, vectors: torch.Tensor, batch_clips: int = 64) -> torch.Tensor:
        out = []
        with torch.inference_mode():
            for start in range(0, len(vectors), batch_clips):
                chunk = vectors[start : start + batch_clips]
                flat = chunk.reshape(-1, self.config.input_dim).to(self.device)
                out.append((flat - self.model_(flat)).reshape(chunk.shape).cpu())
        return torch.cat(out)

    # -- scoring ------------------------------------------------------------------------------
    def score(self, vectors: torch.Tensor) -> dict[str, np.ndarray]:
        """vectors (clips, positions, input_dim) -> {'mse': (clips,), 'mahala': (clips,)}."""
        residuals = self._residuals(vectors)
        mse = (residuals**2).mean(dim=(1, 2)).double().numpy()
        per_domain = [_mahalanobis_mean(residuals, inv).numpy() for inv in self.cov_inv_.values()]
        mahala = np.min(np.stack(per_domain), axis=0)
        return {"mse": mse, "mahala": mahala}

    # -- persistence --------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to restore the fitted baseline (for ``torch.save``)."""
        return {
            "config": asdict(self.config),
            "seed": self.seed,
            "model": self.model_.state_dict(),
            "cov_inv": self.cov_inv_,
            "loss_history": self.loss_history_,
        }

    @classmethod
    def from_state(cls, state: dict, device: str | torch.device = "cpu") -> AutoencoderBaseline:
        """Rebuild a fitted baseline from :meth:`state`."""
        obj = cls(AEConfig(**state["config"]), seed=state["seed"], device=device, progress=False)
        obj.model_ = BaselineAE(obj.config).to(obj.device)
        obj.model_.load_state_dict(state["model"])
        obj.model_.eval()
        obj.cov_inv_ = state["cov_inv"]
        obj.loss_history_ = state["loss_history"]
        return obj


def fit_score_machine(
    train_rows,
    test_rows,
    config: AEConfig,
    *,
    n_samples: int | None,
    seed: int = 0,
    cache_dir=None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Train (or load from cache) the baseline for one machine type and score its clips.

    train_rows / test_rows: data-index rows (``path``, ``domain``) of one machine type.
    n_samples: clip length in samples (clips are tiled/cropped to it; None keeps each clip's
    own length, which must then be equal within the set).
    Returns ``{"test": {"mse", "mahala"}, "train": {"mse", "mahala"}, "loss_history": [...]}``;
    training scores feed the gamma decision threshold and score normalisation.
    The fitted model is cached under ``cache_dir`` keyed by the config, the seed and the
    training clips (paths, sizes, mtimes), written atomically.
    """
    from pathlib import Path

    from asd_utils.data import load_batch
    from asd_utils.io_utils import atomic_path, files_fingerprint, stable_hash

    train_paths = list(train_rows["path"])
    if n_samples is None:  # DCASE clips of one machine type share a length: take the first's
        import soundfile

        n_samples = soundfile.info(train_paths[0]).frames
    key = stable_hash({"config": asdict(config), "seed": seed, "n_samples": n_samples,
                       "train": files_fingerprint(train_paths)})
    cache_file = Path(cache_dir) / f"ae_{key}.pt" if cache_dir is not None else None
    train_vectors = clip_vectors(load_batch(train_paths, n_samples=n_samples), config)
    if cache_file is not None and cache_file.exists():
        model = AutoencoderBaseline.from_state(torch.load(cache_file, weights_only=True), device=device)
    else:
        model = AutoencoderBaseline(config, seed=seed, device=device, progress=progress)
        model.fit(train_vectors, train_rows["domain"].to_numpy())
        if cache_file is not None:
            with atomic_path(cache_file) as tmp:
                torch.save(model.state(), tmp)
    test_vectors = clip_vectors(load_batch(list(test_rows["path"]), n_samples=n_samples), config)
    return {
        "test": model.score(test_vectors),
        "train": model.score(train_vectors),
        "loss_history": list(model.loss_history_),
    }


SYSTEMS = {"AE-MSE": "mse", "AE-MAHALA": "mahala"}


def run_autoencoder_baseline(
    index,
    config: AEConfig,
    *,
    clip_seconds: float | None = None,
    seed: int = 0,
    cache_dir=None,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Both baseline systems on every machine type of a data index (one AE per machine type).

    index: the data index (``asd_utils.data.discover``); train = normal ``train`` clips,
    test = every ``test`` clip, labelled or blinded (metrics need labels; submissions do not).
    clip_seconds: crop/tile length (None: each machine type's own clip length).
    Returns ``{"test_index", "train_index", "scores": {system: (test clips,)},
    "train_scores": {system: (train clips,)}, "loss_history": {machine: [...]}}`` with rows
    aligned to the returned ``test_index`` / ``train_index``.
    """
    import pandas as pd

    train_index = index[index["split"] == "train"].reset_index(drop=True)
    test_index = index[index["split"] == "test"].reset_index(drop=True)
    if len(train_index) == 0 or len(test_index) == 0:
        raise ValueError(f"the index needs train and test clips; got {len(train_index)} train, {len(test_index)} test")
    machines = sorted(train_index["machine"].unique())
    scores = {name: np.zeros(len(test_index)) for name in SYSTEMS}
    train_scores = {name: np.zeros(len(train_index)) for name in SYSTEMS}
    histories = {}
    n_samples = None if clip_seconds is None else int(round(clip_seconds * 16000))
    for machine in tqdm(machines, desc="AE baseline per machine", disable=not progress):
        train_mask = (train_index["machine"] == machine).to_numpy()
        test_mask = (test_index["machine"] == machine).to_numpy()
        result = fit_score_machine(
            train_index[train_mask], test_index[test_mask], config, n_samples=n_samples, seed=seed,
            cache_dir=cache_dir, device=device, progress=False,
        )
        for system, key in SYSTEMS.items():
            scores[system][test_mask] = result["test"][key]
            train_scores[system][train_mask] = result["train"][key]
        histories[machine] = result["loss_history"]
    return {
        "test_index": test_index,
        "train_index": train_index,
        "scores": scores,
        "train_scores": train_scores,
        "loss_history": pd.DataFrame(
            [(m, epoch + 1, loss) for m, h in histories.items() for epoch, loss in enumerate(h)],
            columns=["machine", "epoch", "loss"],
        ),
    }
