"""Shared test helper: a test clip's score must not depend on the other test clips (first-shot rule).

Every system of every notebook is checked through :func:`assert_clip_independent`::

    from clip_independence import assert_clip_independent   # pytest puts tests/ on sys.path

    def score_fn(rows):            # rows: a subset / extension of the test clips, in order
        return system.score(...)   # one score per row
    assert_clip_independent(score_fn, test_rows)

``score_fn`` gets the test items and returns one score per item. The helper scores the full set
twice (the scores must repeat: determinism), then

1. with ``n_drop`` items removed (spread over the set: the first, the last and evenly between),
2. with items duplicated in place (an inserted copy right after its original) and a copy of the
   first item appended at the end,
3. with the first and the last item alone,

and asserts that every kept item's score equals its score in the full set to ``atol`` (and that a
duplicate scores like its original). The original items keep their relative order in every call.
Items are a list/tuple, a numpy array or torch tensor (first axis) or a DataFrame (rows via
``iloc``; the index labels travel with the rows, so duplicates repeat a label).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["assert_clip_independent", "take"]


def take(items, positions: Sequence[int]):
    """``items`` restricted to ``positions`` (in that order; repeats allowed), same container kind."""
    positions = [int(p) for p in positions]
    try:
        import pandas as pd

        if isinstance(items, (pd.DataFrame, pd.Series)):
            return items.iloc[positions]
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    if isinstance(items, np.ndarray):
        return items[np.asarray(positions, dtype=np.int64)]
    try:
        import torch

        if isinstance(items, torch.Tensor):
            return items[torch.as_tensor(positions, dtype=torch.long)]
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(items, tuple):
        return tuple(items[p] for p in positions)
    return [items[p] for p in positions]


def _scores(score_fn: Callable, items, n: int, what: str) -> np.ndarray:
    out = score_fn(items)
    try:
        import torch

        if isinstance(out, torch.Tensor):
            out = out.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    out = np.asarray(out, dtype=np.float64)
    if out.shape != (n,):
        raise AssertionError(f"score_fn returned shape {out.shape} for {n} items ({what}); expected ({n},)")
    return out


def _compare(got: np.ndarray, expected: np.ndarray, positions: Sequence[int], atol: float, what: str) -> None:
    bad = ~np.isclose(got, expected, rtol=0.0, atol=atol, equal_nan=True)
    if bad.any():
        pos = np.asarray(positions)[bad]
        worst = float(np.nanmax(np.abs(got - expected))) if np.isfinite(got - expected).any() else float("nan")
        raise AssertionError(
            f"scores changed when {what}: {int(bad.sum())} of {len(got)} kept items differ "
            f"(original positions {pos[:8].tolist()}{' ...' if len(pos) > 8 else ''}; "
            f"max |difference| {worst:.3g} > atol {atol:g}); a clip's score must not depend on the other test clips")


def _drop_positions(n: int, n_drop: int) -> list[int]:
    """``n_drop`` distinct positions spread over ``range(n)``: first, last, evenly between."""
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, n_drop)})


def assert_clip_independent(score_fn: Callable, test_items, *, n_drop: int = 3, atol: float = 1e-9) -> None:
    """Assert that ``score_fn``'s score of each test item does not depend on the other items.

    score_fn: ``items -> (len(items),)`` scores (array-like or tensor), deterministic.
    test_items: at least ``n_drop + 2`` items (list/tuple, numpy array, torch tensor or DataFrame).
    n_drop: how many items are removed in the removal check (>= 1).
    atol: absolute tolerance of the comparison (use ~1e-5 for float32 networks whose batched
    arithmetic rounds differently with the batch size). NaN scores must stay NaN.
    Raises ``AssertionError`` naming the check and the items whose score moved.
    """
    n = len(test_items)
    n_drop = int(n_drop)
    if n_drop < 1:
        raise ValueError(f"n_drop must be >= 1, got {n_drop}")
    if n < n_drop + 2:
        raise ValueError(f"need at least n_drop + 2 = {n_drop + 2} test items, got {n}")
    everything = list(range(n))
    full = _scores(score_fn, test_items, n, "all items")
    again = _scores(score_fn, test_items, n, "all items, second call")
    _compare(again, full, everything, atol, "the same items were scored a second time (score_fn is not deterministic)")

    dropped = _drop_positions(n, n_drop)
    if len(dropped) < n_drop:  # very small sets: fill with the lowest positions not yet chosen
        dropped = sorted(set(dropped) | set([p for p in everything if p not in dropped][: n_drop - len(dropped)]))
    kept = [p for p in everything if p not in set(dropped)]
    got = _scores(score_fn, take(test_items, kept), len(kept), f"{len(dropped)} items removed")
    _compare(got, full[kept], kept, atol, f"items at positions {dropped} were removed")

    duplicated = set(dropped)  # these get an inserted copy right after themselves
    extended = []
    for p in everything:
        extended.append(p)
        if p in duplicated:
            extended.append(p)
    extended.append(0)
    got = _scores(score_fn, take(test_items, extended), len(extended), "items duplicated")
    _compare(got, full[extended], extended, atol,
             f"copies of the items at positions {sorted(duplicated)} and of item 0 were added")

    for p in sorted({0, n - 1}):
        got = _scores(score_fn, take(test_items, [p]), 1, f"item {p} alone")
        _compare(got, full[[p]], [p], atol, f"item {p} was scored alone")
