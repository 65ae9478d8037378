"""Seeding, random-number-generator state capture and CPU-kernel pinning for reproducible training."""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, *, deterministic: bool = True) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    With ``deterministic=True`` (default) the cheap determinism switches are set as well:
    ``torch.backends.cudnn.deterministic = True``, ``cudnn.benchmark = False`` and
    ``torch.use_deterministic_algorithms(True, warn_only=True)`` (warn, never fail, when an op has
    no deterministic kernel), plus ``CUBLAS_WORKSPACE_CONFIG`` when it is unset so that cuBLAS can
    honour the request. Returns ``seed``.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        _use_deterministic_algorithms(warn_only=True)
    return seed


def _use_deterministic_algorithms(*, warn_only: bool) -> None:
    """``torch.use_deterministic_algorithms(True, warn_only=...)`` without its cost of importing
    ``torch._inductor`` (about 2 s per process, in every notebook) when nothing has loaded it: eager
    kernels read only ATen's flag, set here directly; inductor's own switch (for ``torch.compile``) is
    its ``TORCHINDUCTOR_DETERMINISTIC`` variable, read when inductor is first imported."""

    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=warn_only)
        return
    os.environ.setdefault("TORCHINDUCTOR_DETERMINISTIC", "1")
    torch._C._set_deterministic_algorithms(True, warn_only=warn_only)


# Environment variables through which torch's CPU libraries choose their instruction-set code path,
# read once, on first use: ATen's vectorised kernels (reductions, element-wise ops, batch norm),
# oneDNN's convolutions and MKL's GEMM/FFT. Different paths round differently, and training
# amplifies a last-bit difference into visibly different models.
CPU_KERNEL_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def pin_cpu_numerics(threads: int | None = None, *, isa: str | None = "avx2") -> dict[str, Any]:
    """Make CPU numerics depend as little on the machine as is cheap; return what is in effect.

    - ``threads``: ``torch.set_num_threads(threads)`` (the order of float sums in conv/GEMM kernels
      depends on the thread count). None leaves it.
    - ``isa="avx2"``: on an x86 CPU with AVX2, cap ATen, oneDNN and MKL at their AVX2 code paths
      (:data:`CPU_KERNEL_ENV`; ``os.environ.setdefault``, so values set by the user win). A machine
      with AVX-512 then computes what an AVX2-only machine computes; on an AVX2 machine nothing
      changes, and nothing is slower. Without AVX2 (or ``isa=None``) nothing is pinned.

    The libraries read these variables on first use, so call this before any tensor work (it is
    called by ``asd_utils.notebook.context.start``); the result says whether ATen honoured the pin
    (``"aten_capability"``). Returns ``{"threads", "aten_capability", "mkldnn", "pinned": {var: value}}``.
    """
    pinned: dict[str, str] = {}
    if isa is not None:
        if isa.lower() != "avx2":
            raise ValueError(f"isa must be 'avx2' or None, got {isa!r}")
        supported = False
        try:
            supported = bool(torch.cpu._is_avx2_supported())
        except (AttributeError, RuntimeError):  # pragma: no cover - non-x86 or older torch
            supported = False
        if supported:
            for key, value in CPU_KERNEL_ENV.items():
                os.environ.setdefault(key, value)
                pinned[key] = os.environ[key]
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    return {"threads": torch.get_num_threads(), "aten_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
            "pinned": pinned}


def get_rng_states() -> dict[str, Any]:
    """Snapshot of the global generators of Python, NumPy and torch (CPU, CUDA when present).

    Only tensors, ints, floats, strings and tuples are stored, so a checkpoint holding it loads
    with ``torch.load(..., weights_only=True)``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore generators captured by :func:`get_rng_states`."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
