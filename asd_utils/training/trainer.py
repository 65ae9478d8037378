"""A small, generic trainer for embedding models trained with a classification loss.

``Trainer(model, loss_fn, ...).fit(loader)`` runs ``loss_fn(model(x), y)`` over batches ``(x, y)``
with Adam/AdamW, a warm-up schedule (``asd_utils.training.schedulers``), optional mixup, gradient
accumulation, gradient clipping, an EMA of the weights, opt-in AMP on CUDA (a no-op on CPU) and a
tqdm progress bar. Training is float32 unless ``amp=True``: none of the reproduced reports says it
trains in mixed precision, and the public code they build on (ssl4asd, OS-SCL) trains in float32.
With ``checkpoint_dir`` it writes ``last.pt`` atomically at the end of every epoch;
``fit(loader, resume=True)`` continues from it and reaches exactly the result of an uninterrupted
run (same batches, same mixup draws, same dropout masks) when the loader shuffles with a
``torch.Generator`` (its state is checkpointed too) and ``num_workers=0``.

Resumption is at epoch granularity: an interrupted epoch is re-run from its start.

Under ``torchrun --nproc_per_node N`` (see :mod:`asd_utils.training.distributed`) the same code
trains with ``DistributedDataParallel``: the loader is re-wrapped with a ``DistributedSampler``
(per-process batch = configured batch / N, so the global batch and the schedule stay as
configured), micro-batches that only accumulate skip the gradient all-reduce (``no_sync``), batch
norm is synchronised on CUDA (``SyncBatchNorm``; on CPU it stays per process), only rank 0 shows a
progress bar and writes checkpoints, and a checkpoint resumes with any number of processes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from asd_utils.device import autocast_context, resolve_device
from asd_utils.storage.atomic import atomic_path
from asd_utils.training import distributed as dist_utils
from asd_utils.training.ema import EMA
from asd_utils.training.mixup import mixup, one_hot
from asd_utils.training.schedulers import build_scheduler
from asd_utils.training.seed import get_rng_states, set_rng_states

CHECKPOINT_NAME = "last.pt"
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def build_optimizer(params: Iterable[nn.Parameter], name: str = "adam", lr: float = 1e-3,
                    weight_decay: float = 0.0, **kwargs) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` or ``AdamW`` by name; extra keyword arguments go to the optimizer.

    The multi-tensor (``foreach``) update is the default on every device: on the CPU it gives the
    same parameters bit for bit as torch's per-tensor loop, in a shorter optimiser step
    (``tests/test_training_trainer.py`` checks the equality)."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {sorted(OPTIMIZERS)}")
    if not kwargs.get("fused"):  # torch refuses foreach and fused together
        kwargs.setdefault("foreach", True)
    return OPTIMIZERS[key](params, lr=lr, weight_decay=weight_decay, **kwargs)


def weight_decay_groups(model: nn.Module, params: list[nn.Parameter], decay_on: str = "all",
                        weight_decay: float = 0.0) -> list[nn.Parameter] | list[dict]:
    """The optimiser's parameters: ``params`` as they are (``decay_on="all"``), or two groups
    (``"kernels"``): the model's trainable weights with ``ndim >= 2`` at ``weight_decay`` and every
    other parameter of ``params`` (biases, norms, a loss's centres) at 0.

    With Adam (coupled decay) ``weight_decay = 2 * lambda`` equals Keras' ``l2(lambda)`` kernel
    regulariser, whose penalty ``lambda * sum(w ** 2)`` has the gradient ``2 * lambda * w``.
    """
    if decay_on == "all":
        return params
    if decay_on != "kernels":
        raise ValueError(f"weight_decay_on must be 'all' or 'kernels', got {decay_on!r}")
    kernel_ids = {id(p) for p in model.parameters() if p.requires_grad and p.dim() >= 2}
    decayed = [p for p in params if id(p) in kernel_ids]
    others = [p for p in params if id(p) not in kernel_ids]
    return [{"params": decayed, "weight_decay": float(weight_decay)}, {"params": others, "weight_decay": 0.0}]


@torch.inference_mode()
def extract_embeddings(model: nn.Module, inputs: Any, *, batch_size: int = 64,
                       device: str | torch.device = "cpu",
                       forward_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
                       amp: bool = False) -> np.ndarray:
    """Run ``model`` in eval mode over ``inputs`` and return ``(N, D)`` float32 embeddings.

    ``inputs``: an ``(N, ...)`` array/tensor (batched here, e.g. waveforms ``(N, samples)``) or an
    iterable of batches (tensors or ``(inputs, labels)`` tuples, e.g. a non-shuffling DataLoader).
    The model's train/eval mode is restored afterwards. Under torchrun an array/tensor input is
    split into contiguous shards, one per process, and the embeddings are gathered back in input
    order on every process (an iterable of batches is not sharded).
    """
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    sharded = isinstance(inputs, (np.ndarray, torch.Tensor)) and dist_utils.is_distributed()
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        tensor = torch.as_tensor(inputs)
        n_total = len(tensor)
        if sharded:
            tensor = tensor[dist_utils.shard_slice(n_total)]
        batches: Iterable = (tensor[i: i + batch_size] for i in range(0, len(tensor), batch_size))
    else:
        batches = inputs
    out = []
    try:
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            x = x.to(device)
            with autocast_context(device, amp):
                emb = forward_fn(model, x) if forward_fn is not None else model(x)
            out.append(emb.float().cpu().numpy())
    finally:
        model.train(was_training)
    if sharded:  # a rank with an empty shard (more processes than inputs) contributes nothing
        local = np.concatenate(out, axis=0) if out else np.zeros((0, 0), dtype=np.float32)
        return dist_utils.gather_rows(local, n_total)
    if not out:
        raise ValueError("extract_embeddings got no inputs")
    return np.concatenate(out, axis=0)


class _EmbedAndLoss(nn.Module):
    """``(x, y) -> loss_fn(embed(x), y)`` as one module, so DDP synchronises the loss's centres too."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module,
                 forward_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None,
                 device: torch.device, amp: bool):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn
        self.forward_fn, self.device, self.amp = forward_fn, device, amp

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast_context(self.device, self.amp):
            embeddings = self.forward_fn(self.model, x) if self.forward_fn is not None else self.model(x)
        return self.loss_fn(embeddings.float(), y)


@dataclass
class TrainState:
    """Counters and per-epoch history; saved in checkpoints."""

    epoch: int = 0  # completed epochs
    step: int = 0  # optimizer steps taken
    history: list[dict[str, float]] = field(default_factory=list)


class Trainer:
    """Train ``model`` (inputs -> embeddings ``(B, D)``) with ``loss_fn(embeddings, labels)``.

    Args:
        model: an ``nn.Module``; ``model(x)`` gives embeddings (or set ``forward_fn``).
        loss_fn: an ``nn.Module`` loss from ``asd_utils.training.losses`` (its learnable centres are
            optimised together with the model; it needs an ``n_classes`` attribute for mixup).
        optimizer_cfg: ``{"name": "adam"|"adamw", "lr": ..., "weight_decay": ..., **kwargs}``;
            ``"weight_decay_on": "kernels"`` decays only the model's weight matrices and kernels
            (``ndim >= 2``: no bias, no norm, no loss centre), like a Keras kernel regulariser.
        scheduler_cfg: ``{"name": "constant"|"cosine"|"inverse_sqrt", "warmup_steps": int,
            "min_ratio": float}``; ``total_steps`` is derived from the loader length and ``epochs``.
        epochs: total number of epochs.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        amp: opt-in mixed precision (float16 autocast + gradient scaling) on CUDA; ignored on CPU.
            Default False: float32, as the reports' code trains.
        grad_accum_steps: micro-batches per optimizer step (the loss is averaged over them).
        max_grad_norm: clip the global gradient norm to this value (None: no clipping).
        ema_decay: keep an :class:`EMA` of the model weights with this decay (None: no EMA).
        mixup_alpha: apply :func:`mixup` with ``Beta(alpha, alpha)`` to each batch (None: off).
        mixup_prob: per-sample probability of mixing.
        seed: seeds the trainer's own generator (mixup draws).
        checkpoint_dir: write ``last.pt`` there after every ``checkpoint_every`` epochs and at the end.
        progress: show a tqdm bar with the running loss.
        forward_fn: ``forward_fn(model, x) -> embeddings`` when ``model(x)`` is not the embedding.
        config: extra JSON-like metadata stored in checkpoints (e.g. the notebook's config).
        find_unused_parameters: passed to ``DistributedDataParallel`` under torchrun (set it when
            some trainable parameters get no gradient in a step).
    """

    def __init__(self, model: nn.Module, loss_fn: nn.Module, optimizer_cfg: dict | None = None,
                 scheduler_cfg: dict | None = None, epochs: int = 1, *, device: str | torch.device = "cpu",
                 amp: bool = False, grad_accum_steps: int = 1, max_grad_norm: float | None = None,
                 ema_decay: float | None = None, mixup_alpha: float | None = None, mixup_prob: float = 1.0,
                 seed: int = 0, checkpoint_dir: str | Path | None = None, checkpoint_every: int = 1,
                 progress: bool = True,
                 forward_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
                 config: dict | None = None, find_unused_parameters: bool = False):
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        if grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be >= 1, got {grad_accum_steps}")
        distributed = dist_utils.init_distributed()
        self.device = resolve_device(device)
        if distributed and self.device.type == "cuda":
            self.device = torch.device("cuda", dist_utils.local_rank())
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn.to(self.device)
        self.optimizer_cfg = {"name": "adam", "lr": 1e-3, **(optimizer_cfg or {})}
        self.scheduler_cfg = {"name": "constant", "warmup_steps": 0, **(scheduler_cfg or {})}
        self.epochs = int(epochs)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.grad_accum_steps = int(grad_accum_steps)
        self.max_grad_norm = max_grad_norm
        self.mixup_alpha = mixup_alpha
        self.mixup_prob = float(mixup_prob)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every = int(checkpoint_every)
        self.progress = bool(progress) and dist_utils.is_main_process()
        self.seed = int(seed)
        self.forward_fn = forward_fn
        self.config = dict(config or {})
        self.generator = torch.Generator().manual_seed(int(seed))
        self.ema = EMA(self.model, ema_decay) if ema_decay is not None else None
        self.params = [p for p in list(self.model.parameters()) + list(self.loss_fn.parameters())
                           if p.requires_grad]
        cfg = dict(self.optimizer_cfg)
        groups = weight_decay_groups(self.model, self.params, cfg.pop("weight_decay_on", "all"),
                                     float(cfg.get("weight_decay", 0.0)))
        self.optimizer = build_optimizer(groups, cfg.pop("name"), **cfg)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None
        self.steps_per_epoch: int | None = None
        self.state = TrainState()
        self.train_module: nn.Module = _EmbedAndLoss(self.model, self.loss_fn, forward_fn, self.device, self.amp)
        if distributed:
            self.train_module = DistributedDataParallel(
                self.train_module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters)

    # ------------------------------------------------------------------ set-up
    def _setup_scheduler(self, n_batches: int) -> None:
        steps = math.ceil(n_batches / self.grad_accum_steps)
        if self.scheduler is not None and steps == self.steps_per_epoch:
            return
        self.steps_per_epoch = steps
        cfg = dict(self.scheduler_cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg.pop("name"), cfg.pop("warmup_steps", 0),
                                         total_steps=steps * self.epochs, **cfg)

    @staticmethod
    def _loader_generators(loader: Any) -> list[torch.Generator]:
        found: list[torch.Generator] = []
        for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None),
                      getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
            gen = getattr(owner, "generator", None)
            if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
                found.append(gen)
        return found

    # ------------------------------------------------------------------ training
    def fit(self, train_loader: Any, *, resume: bool = False, until_epoch: int | None = None
            ) -> list[dict[str, float]]:
        """Train until ``epochs`` (or ``until_epoch``) epochs are complete; return the history.

        ``train_loader`` yields ``(inputs, labels)`` with labels ``(B,)`` int64 or ``(B, C)`` soft.
        ``resume=True`` loads ``checkpoint_dir/last.pt`` when it exists (weights, loss centres and
        scale, optimizer, scheduler, EMA, counters, every RNG state including the loader's
        generator) and continues. ``until_epoch`` stops early after that many completed epochs
        (the schedule still spans ``epochs``).
        """
        if dist_utils.is_distributed():
            train_loader = dist_utils.distributed_loader(train_loader, seed=self.seed)
        n_batches = len(train_loader)
        if n_batches == 0:
            raise ValueError("train_loader yields no batches")
        self._setup_scheduler(n_batches)
        if resume:
            if self.checkpoint_dir is None:
                raise ValueError("resume=True needs checkpoint_dir")
            path = self.checkpoint_dir / CHECKPOINT_NAME
            if path.exists():
                self.load_checkpoint(path, loader=train_loader)
        stop = self.epochs if until_epoch is None else min(int(until_epoch), self.epochs)
        while self.state.epoch < stop:
            record = self._run_epoch(train_loader, n_batches)
            self.state.history.append(record)
            self.state.epoch += 1
            if self.checkpoint_dir is not None and (
                    self.state.epoch % self.checkpoint_every == 0 or self.state.epoch == stop):
                self.save_checkpoint(self.checkpoint_dir / CHECKPOINT_NAME, loader=train_loader)
        return self.state.history

    def embed(self, inputs: Any, *, batch_size: int = 64, use_ema: bool = False) -> np.ndarray:
        """Embeddings of ``inputs`` with the trained (or EMA-averaged) model; see :func:`extract_embeddings`."""
        model = self.ema.averaged_model(self.model) if use_ema and self.ema is not None else self.model
        return extract_embeddings(model, inputs, batch_size=batch_size, device=self.device,
                                  forward_fn=self.forward_fn)

    def _run_epoch(self, loader: Any, n_batches: int) -> dict[str, float]:
        self.model.train()
        self.loss_fn.train()
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):  # DistributedSampler: a new shuffle each epoch
            sampler.set_epoch(self.state.epoch)
        start = time.perf_counter()
        total, count, n_clips = 0.0, 0, 0
        bar = tqdm(loader, total=n_batches, desc=f"epoch {self.state.epoch + 1}/{self.epochs}",
                   disable=not self.progress, leave=False)
        self.optimizer.zero_grad(set_to_none=True)
        for index, batch in enumerate(bar):
            x, y = batch[0].to(self.device), batch[1].to(self.device)
            if self.mixup_alpha is not None:
                y = one_hot(y, self.loss_fn.n_classes)
                x, y, _ = mixup(x, y, self.mixup_alpha, self.generator, prob=self.mixup_prob)
            group_start = index - index % self.grad_accum_steps
            group_size = min(self.grad_accum_steps, n_batches - group_start)
            last_of_group = index + 1 == group_start + group_size
            # accumulating micro-batches skip DDP's gradient all-reduce; the group's last one syncs
            sync = nullcontext() if last_of_group or not hasattr(self.train_module, "no_sync") \
                else self.train_module.no_sync()
            with sync:
                loss = self.train_module(x, y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {loss.item()} at epoch {self.state.epoch + 1}, "
                                             f"batch {index}")
                self.scaler.scale(loss / group_size).backward()
            if last_of_group:
                self._optimizer_step()
            total += float(loss.detach()) * x.shape[0]
            n_clips += x.shape[0]
            count += 1
            bar.set_postfix(loss=f"{total / n_clips:.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
        bar.close()
        if dist_utils.is_distributed():  # the epoch's loss over every process's clips
            sums = torch.tensor([total, float(n_clips)], dtype=torch.float64, device=self.device)
            torch.distributed.all_reduce(sums)
            total, n_clips = float(sums[0]), int(sums[1])
        seconds = time.perf_counter() - start
        return {"epoch": self.state.epoch + 1, "loss": total / max(n_clips, 1), "batches": count,
                "clips_per_s": n_clips / max(seconds, 1e-9), "lr": self.optimizer.param_groups[0]["lr"]}

    def _optimizer_step(self) -> None:
        if self.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state.step += 1
        if self.ema is not None:
            self.ema.update(self.model)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self, loader: Any = None) -> dict[str, Any]:
        """Everything needed to resume, as a ``weights_only``-loadable dict."""
        return {
            "format": "asd_utils.trainer/1",
            "model": self.model.state_dict(),
            "loss_fn": self.loss_fn.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "train_state": asdict(self.state),
            "rng": get_rng_states(),
            "trainer_generator": self.generator.get_state(),
            "loader_generators": [g.get_state() for g in self._loader_generators(loader)] if loader else [],
            "config": {"optimizer": self.optimizer_cfg, "scheduler": self.scheduler_cfg,
                       "epochs": self.epochs, "grad_accum_steps": self.grad_accum_steps,
                       "max_grad_norm": self.max_grad_norm, "mixup_alpha": self.mixup_alpha,
                       "mixup_prob": self.mixup_prob, "extra": self.config},
        }

    def save_checkpoint(self, path: str | Path, loader: Any = None) -> Path:
        """Write :meth:`checkpoint_state` to ``path`` atomically (temporary file + rename).

        Under torchrun only rank 0 writes; every process waits until the file is complete.
        """
        if dist_utils.is_main_process():
            with atomic_path(path) as tmp:
                torch.save(self.checkpoint_state(loader), tmp)
        dist_utils.barrier()
        return Path(path)

    def load_checkpoint(self, path: str | Path, loader: Any = None) -> dict[str, Any]:
        """Restore a checkpoint written by :meth:`save_checkpoint` (``weights_only`` loading).

        ``loader``: the training loader whose generator state should be restored.
        """
        path = Path(path)
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)  # RNG states must stay on CPU
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named
            raise ValueError(f"cannot load trainer checkpoint {path}: {exc}") from exc
        if not isinstance(ckpt, dict) or ckpt.get("format") != "asd_utils.trainer/1":
            raise ValueError(f"{path} is not an asd_utils trainer checkpoint")
        self.model.load_state_dict(ckpt["model"])
        self.loss_fn.load_state_dict(ckpt["loss_fn"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["scheduler"] is not None:
            if self.scheduler is None:
                raise ValueError("call fit() (or _setup_scheduler) before loading a scheduler state")
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if ckpt["ema"] is not None:
            if self.ema is None:
                self.ema = EMA(self.model, ckpt["ema"]["decay"])
            self.ema.load_state_dict(ckpt["ema"])
        self.state = TrainState(**ckpt["train_state"])
        set_rng_states(ckpt["rng"])
        self.generator.set_state(ckpt["trainer_generator"].cpu())
        gens = self._loader_generators(loader) if loader is not None else []
        for gen, saved in zip(gens, ckpt["loader_generators"]):
            gen.set_state(saved.cpu())
        return ckpt
