"""Device selection shared by notebooks and extraction code."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Map ``"auto"`` to CUDA when available, else CPU; validate explicit requests.

    Raises ``RuntimeError`` when ``"cuda"`` is requested but no GPU is visible.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"DEVICE={device!r} was requested but torch sees no CUDA device; use 'cpu' or 'auto'")
    return torch.device(name)


def autocast_context(device: torch.device, enabled: bool = True):
    """bfloat16/float16 autocast on CUDA, a no-op context elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return torch.autocast(device_type="cpu", enabled=False)
