"""Shared test set-up: keep torch to one thread per test process (CI has 2 cores)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

from shared_smoke_run import smoke_run  # noqa: E402,F401  (the session fixture every notebook-level test shares)
