"""Where the compendium keeps generated things.

All generated folders (``data/``, ``cache/``, ``outputs/``, ``results/``, ``figures/``) live
under the project root, which is the folder holding ``pyproject.toml`` above this package, or
``$ASD_HOME`` when set. Nothing here is an absolute path of any particular machine.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILES = ("smoke", "default", "paper")


def project_root() -> Path:
    """Return the compendium root (``$ASD_HOME`` or the repository holding this package)."""
    env = os.environ.get("ASD_HOME")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent
    for candidate in (here.parent, *here.parents):
        if (candidate / "pyproject.toml").exists():
            return candidate
    return Path.cwd().resolve()


def check_profile(profile: str) -> str:
    """Return ``profile`` if it is known, else raise ``ValueError`` listing the known ones."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    return profile


def _sub(name: str, *parts: str, create: bool = True) -> Path:
    path = project_root().joinpath(name, *parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(*parts: str, create: bool = True) -> Path:
    """``<root>/data/...``: generated synthetic datasets."""
    return _sub("data", *parts, create=create)


def cache_dir(*parts: str, create: bool = True) -> Path:
    """``<root>/cache/...``: embeddings, features, trained models (keyed, safe to delete).

    Under a channel setting other than ``near`` (``$ASD_CHANNEL``, see ``asd_utils.data.channels``)
    the caches live in ``<root>/cache/channel_<name>/...``: keys made of file paths and mtimes
    cannot tell which channel of a two-channel clip was read."""
    channel = os.environ.get("ASD_CHANNEL", "").strip()
    prefix = (f"channel_{channel}",) if channel and channel != "near" else ()
    return _sub("cache", *prefix, *parts, create=create)


def results_dir(profile: str, *parts: str, create: bool = True) -> Path:
    """``<root>/results/<profile>/...``: tidy result CSVs and submission files."""
    return _sub("results", check_profile(profile), *parts, create=create)


def figures_dir(profile: str, *parts: str, create: bool = True) -> Path:
    """``<root>/figures/<profile>/...``: figures written by runs."""
    return _sub("figures", check_profile(profile), *parts, create=create)


def outputs_dir(profile: str, *parts: str, create: bool = True) -> Path:
    """``<root>/outputs/<profile>/...``: executed notebooks."""
    return _sub("outputs", check_profile(profile), *parts, create=create)


def synthetic_root(profile: str) -> Path:
    """Folder of the synthetic dataset generated for ``profile`` (``data/synth_<profile>``)."""
    return data_dir(f"synth_{check_profile(profile)}", create=False)
