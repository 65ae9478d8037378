"""The official DCASE 2023-2025 Task 2 autoencoder baseline: AE-MSE and AE-MAHALA.

Harada et al., "First-shot anomaly sound detection for machine condition monitoring: a domain
generalization baseline", EUSIPCO 2023; code ``nttcslab/dcase2023_task2_baseline_ae``
(``networks/dcase2023t2_ae/dcase2023t2_ae.py``, ``networks/criterion/mahala.py``). Front end:
log-mel (128 bins, n_fft 1024, hop 512, floor ``max(mel, float eps)``), 5 consecutive frames
stacked into a 640-d vector. Model: a fully connected autoencoder
640-128-128-128-128-8-128-128-128-128-640 with BatchNorm (momentum 0.01, eps 1e-3) and ReLU after
every layer but the last, trained with MSE (Adam, lr 1e-3, batch 256). One model per machine type.
As the official code, 10 % of the training vectors are held out for validation: they are neither
trained on nor used for the covariances (their loss is logged).

Scores per clip (higher = more anomalous), as the official ``DCASE2023T2AE.eval``:
- ``mse``: mean over the clip's vectors of the mean squared reconstruction error;
- ``mahala``: the residuals ``x - x_hat`` are cut into single frames of ``n_mels`` values; with
  ``P`` the inverse of a domain's 128 x 128 residual-frame covariance the official score is the
  average of every entry of ``delta @ P @ delta.T`` over the clip's frames, i.e. the *squared*
  Mahalanobis distance of the clip's mean residual frame; the clip score is the minimum over the
  source and the target covariances.
The covariances are the official ones: accumulated over the training batches with each batch's
residual frames centred on that batch's own mean, divided by (number of training *vectors* of
the domain - 1); without target vectors the target covariance is the source one. They are
inverted in float32 with ``torch.linalg.inv`` (the official ``torch.inverse``), no ridge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
import torch
from torch import nn
from tqdm.auto import tqdm

from asd_utils.data import load_batch
from asd_utils.features.logmel import log_mel, stack_frames
from asd_utils.storage.atomic import atomic_path
from asd_utils.storage.keys import cache_key, files_digest
from asd_utils.training.trainer import build_optimizer

DOMAINS = ("source", "target")


@dataclass
class AEConfig:
    """Hyper-parameters of the baseline (defaults = the official values of ``baseline.yaml``)."""

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
    validation_split: float = 0.1

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


def holdout_split(n_vectors: int, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (train, validation) split of ``n_vectors`` training vectors, as the official
    ``train_test_split(range(n), test_size=fraction)``: ``ceil(fraction * n)`` vectors held out.

    Returns two int64 index tensors (train, validation).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {fraction}")
    n_valid = math.ceil(fraction * n_vectors)
    if n_vectors - n_valid < 2:
        raise ValueError(f"{n_vectors} training vectors leave fewer than 2 to train on after holding out "
                         f"{n_valid} for validation")
    order = torch.randperm(n_vectors, generator=generator)
    return order[n_valid:], order[:n_valid]


def residual_covariances(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], n_mels: int) -> dict[str, torch.Tensor]:
    """Per-domain residual-frame covariances exactly as the official covariance epoch.

    batches: ``(residuals (b, n_frames * n_mels), is_target (b,) bool)`` in training-loader order.
    As ``DCASE2023T2AE.train`` with ``networks/criterion/mahala.py``: batches of one vector are
    skipped; each batch's residual vectors of a domain are cut into single frames
    (``view(-1, n_mels)``), centred on *that batch's* mean frame and their scatter matrix is
    summed; the sum is divided by (number of the domain's training vectors - 1) (vectors, not
    frames, as the official code counts). Without target vectors (fewer than 2 here, where the
    official code would divide by zero) the target covariance is the source one.
    Returns ``{"source", "target"}``: (n_mels, n_mels) float64.
    """
    scatter = {d: torch.zeros(n_mels, n_mels, dtype=torch.float64) for d in DOMAINS}
    count = dict.fromkeys(DOMAINS, 0)
    for residuals, is_target in batches:
        if len(residuals) <= 1:
            continue
        is_target = torch.as_tensor(is_target, dtype=torch.bool)
        for domain, mask in (("source", ~is_target), ("target", is_target)):
            n = int(mask.sum())
            if n == 0:
                continue
            frames = residuals[mask].reshape(-1, n_mels).to(torch.float64)
            centred = frames - frames.mean(dim=0)
            scatter[domain] += centred.T @ centred
            count[domain] += n
    if count["source"] < 2:
        raise ValueError(f"the residual covariance needs at least 2 source training vectors, got {count['source']}")
    covariances = {"source": scatter["source"] / (count["source"] - 1)}
    covariances["target"] = (scatter["target"] / (count["target"] - 1) if count["target"] >= 2
                             else covariances["source"].clone())
    return covariances


def invert_covariance(covariance: torch.Tensor) -> torch.Tensor:
    """Precision matrix as the official ``calc_inv_cov``: the covariance in float32, inverted by
    ``torch.linalg.inv`` (no ridge, no pseudo-inverse). (n_mels, n_mels) -> (n_mels, n_mels) float32."""
    try:
        return torch.linalg.inv(covariance.to(torch.float32))
    except torch.linalg.LinAlgError as error:
        raise ValueError(f"the {tuple(covariance.shape)} residual covariance is singular (too few training "
                         "vectors of a domain?)") from error


def mahalanobis_clip_scores(residuals: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """Official AE-MAHALA score of each clip under one domain's precision matrix.

    residuals: (clips, positions, n_frames * n_mels) residual vectors of each clip; precision:
    (n_mels, n_mels). The official score, the mean of every entry of ``delta @ P @ delta.T`` over
    the clip's residual frames ``delta`` (frames x n_mels), equals ``m @ P @ m`` with ``m`` the
    clip's mean residual frame: the squared Mahalanobis distance of the mean frame.
    Returns (clips,) float64.
    """
    n_mels = precision.shape[0]
    mean_frame = residuals.reshape(len(residuals), -1, n_mels).to(torch.float64).mean(dim=1)
    return torch.einsum("cd,de,ce->c", mean_frame, precision.to(torch.float64), mean_frame)


class AutoencoderBaseline:
    """AE-MSE and AE-MAHALA for one machine type (scikit-learn style).

    ``fit(train_vectors, domains)`` trains the AE on 90 % of the training vectors (the official
    validation hold-out) and computes the residual covariances on the same 90 %;
    ``score(vectors)`` returns ``{"mse": (clips,), "mahala": (clips,)}``. Each clip is scored on
    its own (one forward pass per clip, eval mode), so a clip's score does not depend on the others.
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
        'source'/'target'. Holds out ``validation_split`` of the vectors, trains the AE on the
        rest, then computes the residual covariances (:func:`residual_covariances`) over the
        trained-on vectors in a shuffled order of ``batch_size`` batches, as the official code."""
        cfg = self.config
        domains = np.asarray(domains)
        if vectors.ndim != 3 or vectors.shape[2] != cfg.input_dim:
            raise ValueError(f"expected vectors (clips, positions, {cfg.input_dim}), got {tuple(vectors.shape)}")
        if len(domains) != len(vectors) or not set(domains.tolist()) <= set(DOMAINS):
            raise ValueError(f"expected one 'source'/'target' domain per clip ({len(vectors)}), got "
                             f"{len(domains)} with values {sorted(set(map(str, domains)))}")
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.model_ = BaselineAE(cfg).to(self.device)
        flat = vectors.reshape(-1, cfg.input_dim)
        is_target = torch.from_numpy(np.repeat(domains == "target", vectors.shape[1]))
        train_idx, valid_idx = holdout_split(len(flat), cfg.validation_split, generator)
        self.validation_index_ = valid_idx.sort().values  # flat vector indices held out (clip-major)
        self.n_train_vectors_, self.n_validation_vectors_ = len(train_idx), len(valid_idx)
        optimizer = build_optimizer(self.model_.parameters(), "adam", lr=cfg.lr)
        self.loss_history_, self.val_loss_history_ = [], []
        bar = tqdm(range(cfg.epochs), desc="AE epochs", leave=False, disable=not self.progress)
        for _ in bar:
            self.model_.train()
            order = train_idx[torch.randperm(len(train_idx), generator=generator)]
            total, count = 0.0, 0
            for start in range(0, len(order), cfg.batch_size):
                batch = flat[order[start : start + cfg.batch_size]].to(self.device)
                if len(batch) <= 1:  # the official loop skips single-vector batches (BatchNorm)
                    continue
                loss = torch.mean((self.model_(batch) - batch) ** 2)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
                count += len(batch)
            self.loss_history_.append(total / max(count, 1))
            self.model_.eval()
            self.val_loss_history_.append(self._mean_squared_error(flat[valid_idx]))
            bar.set_postfix(loss=f"{self.loss_history_[-1]:.3f}")
        self.model_.eval()
        order = train_idx[torch.randperm(len(train_idx), generator=generator)]
        batches = ((self._flat_residuals(flat[order[s : s + cfg.batch_size]]), is_target[order[s : s + cfg.batch_size]])
                   for s in range(0, len(order), cfg.batch_size))
        covariances = residual_covariances(batches, cfg.n_mels)
        self.cov_ = {d: c.to(torch.float32) for d, c in covariances.items()}  # stored as the official float32
        self.cov_inv_ = {d: invert_covariance(c) for d, c in self.cov_.items()}
        return self

    def _flat_residuals(self, flat: torch.Tensor) -> torch.Tensor:
        """(n, input_dim) -> residuals x - x_hat (n, input_dim) on the CPU, eval mode."""
        with torch.inference_mode():
            x = flat.to(self.device)
            return (x - self.model_(x)).cpu()

    def _mean_squared_error(self, flat: torch.Tensor, batch_size: int = 4096) -> float:
        """Mean squared residual of (n, input_dim) vectors (NaN when n = 0): the validation loss."""
        if len(flat) == 0:
            return float("nan")
        total = sum(float((self._flat_residuals(flat[s : s + batch_size]).double() ** 2).sum())
                    for s in range(0, len(flat), batch_size))
        return total / flat.numel()

    def _residuals(self, vectors: torch.Tensor) -> torch.Tensor:
        """(clips, positions, input_dim) -> residuals of the same shape, one forward pass per clip
        (as the official test loader), so no clip's numbers depend on another clip."""
        return torch.stack([self._flat_residuals(clip) for clip in vectors])

    # -- scoring ------------------------------------------------------------------------------
    def score(self, vectors: torch.Tensor) -> dict[str, np.ndarray]:
        """vectors (clips, positions, input_dim) -> {'mse': (clips,), 'mahala': (clips,)} float64."""
        residuals = self._residuals(vectors)
        mse = (residuals.double() ** 2).mean(dim=(1, 2)).numpy()
        per_domain = torch.stack([mahalanobis_clip_scores(residuals, self.cov_inv_[d]) for d in DOMAINS])
        return {"mse": mse, "mahala": per_domain.min(dim=0).values.numpy()}

    # -- persistence --------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to restore the fitted baseline (for ``torch.save``)."""
        return {
            "config": asdict(self.config),
            "seed": self.seed,
            "model": self.model_.state_dict(),
            "cov": self.cov_,
            "cov_inv": self.cov_inv_,
            "loss_history": self.loss_history_,
            "val_loss_history": self.val_loss_history_,
            "n_vectors": [self.n_train_vectors_, self.n_validation_vectors_],
            "validation_index": self.validation_index_,
        }

    @classmethod
    def from_state(cls, state: dict, device: str | torch.device = "cpu") -> AutoencoderBaseline:
        """Rebuild a fitted baseline from :meth:`state`."""
        obj = cls(AEConfig(**state["config"]), seed=state["seed"], device=device, progress=False)
        obj.model_ = BaselineAE(obj.config).to(obj.device)
        obj.model_.load_state_dict(state["model"])
        obj.model_.eval()
        obj.cov_, obj.cov_inv_ = state["cov"], state["cov_inv"]
        obj.loss_history_, obj.val_loss_history_ = state["loss_history"], state["val_loss_history"]
        obj.n_train_vectors_, obj.n_validation_vectors_ = state["n_vectors"]
        obj.validation_index_ = state["validation_index"]
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
    Returns ``{"test": {"mse", "mahala"}, "train": {"mse", "mahala"}, "loss_history": [...],
    "val_loss_history": [...]}`` (per-epoch training MSE and held-out validation MSE);
    training scores feed the gamma decision threshold and score normalisation.
    The fitted model is cached under ``cache_dir`` keyed by the config, the seed, the training
    clips' content and the code (``asd_utils.storage.keys.cache_key``), written atomically.
    """


    train_paths = list(train_rows["path"])
    if n_samples is None:  # DCASE clips of one machine type share a length: take the first's

        n_samples = soundfile.info(train_paths[0]).frames
    key = cache_key({"config": asdict(config), "seed": seed, "n_samples": n_samples,
                     "train": files_digest(train_paths)}, code=__name__)
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
    if len(test_rows):
        test = model.score(clip_vectors(load_batch(list(test_rows["path"]), n_samples=n_samples), config))
    else:  # a machine type with training clips only (its test clips not released yet)
        test = {key: np.zeros(0) for key in SYSTEMS.values()}
    return {
        "test": test,
        "train": model.score(train_vectors),
        "loss_history": list(model.loss_history_),
        "val_loss_history": list(model.val_loss_history_),
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
    "train_scores": {system: (train clips,)}, "loss_history": DataFrame(machine, epoch, loss,
    val_loss)}`` (training and held-out validation MSE per epoch) with rows
    aligned to the returned ``test_index`` / ``train_index``.
    """

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
            cache_dir=cache_dir, device=device, progress=progress,  # the epochs' bar under the machines' bar
        )
        for system, key in SYSTEMS.items():
            scores[system][test_mask] = result["test"][key]
            train_scores[system][train_mask] = result["train"][key]
        histories[machine] = list(zip(result["loss_history"], result["val_loss_history"]))
    return {
        "test_index": test_index,
        "train_index": train_index,
        "scores": scores,
        "train_scores": train_scores,
        "loss_history": pd.DataFrame(
            [(m, epoch + 1, loss, val) for m, h in histories.items() for epoch, (loss, val) in enumerate(h)],
            columns=["machine", "epoch", "loss", "val_loss"],
        ),
    }
