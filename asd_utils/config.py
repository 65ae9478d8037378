"""Per-notebook configuration with profiles.

One YAML file per notebook lives in ``asd_utils/configs/<name>.yaml`` with the layout::

    common:   {...}          # values shared by every profile
    smoke:    {...}          # overrides for CI (tiny data, tiny models, one epoch)
    default:  {...}          # overrides for the CPU-sized default run
    paper:    {...}          # the report's own hyper-parameters

``load_config(name, profile)`` deep-merges ``common`` with the profile's section. Hyper-parameters
belong there, never as magic numbers in notebook cells.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from asd_utils.paths import check_profile

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def deep_merge(base: dict, override: dict) -> dict:
    """Return a new dict: ``base`` with ``override`` merged in recursively (override wins)."""
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(name: str, profile: str, overrides: dict | None = None) -> dict[str, Any]:
    """Load ``configs/<name>.yaml`` for ``profile``; ``overrides`` (a dict) are merged last.

    Raises ``FileNotFoundError`` naming the expected file when the config does not exist.
    """
    check_profile(profile)
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no config {path.name} in {CONFIG_DIR}; known configs: {known}")
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"common", "smoke", "default", "paper"}
    if unknown:
        raise ValueError(f"{path}: unexpected top-level keys {sorted(unknown)}")
    config = deep_merge(raw.get("common") or {}, raw.get(profile) or {})
    config = deep_merge(config, overrides or {})
    config["profile"] = profile
    return config
