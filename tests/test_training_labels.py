import numpy as np
import pandas as pd
import pytest

from asd_utils.training import build_class_labels


def index():
    return pd.DataFrame({
        "machine": ["fan", "fan", "fan", "slider", "slider", "fan"],
        "section": ["00", "00", "00", "00", "00", "00"],
        "attributes": ["m-n_W", "m-n_X", "m-n_W", "noAttribute", "noAttribute", "m-n_W"],
        "domain": ["source", "source", "target", "source", "source", "source"],
    })


def test_class_per_distinct_combination_sorted():
    labels, classes = build_class_labels(index())
    assert labels.dtype == np.int64 and labels.shape == (6,)
    assert classes == sorted(classes) and len(classes) == 4
    assert [classes[i] for i in labels] == [
        "fan|00|m-n_W|source", "fan|00|m-n_X|source", "fan|00|m-n_W|target",
        "slider|00|noAttribute|source", "slider|00|noAttribute|source", "fan|00|m-n_W|source"]


def test_keys_subset_and_reuse_of_class_list():
    labels, classes = build_class_labels(index(), keys=("machine", "section"))
    assert classes == ["fan|00", "slider|00"] and labels.tolist() == [0, 0, 0, 1, 1, 0]
    sub = index().iloc[3:5]
    labels2, classes2 = build_class_labels(sub, classes=build_class_labels(index())[1])
    assert classes2 == build_class_labels(index())[1]
    assert labels2.tolist() == [3, 3]


def test_missing_values_and_errors():
    frame = index()
    frame.loc[0, "domain"] = None
    _, classes = build_class_labels(frame)
    assert "fan|00|m-n_W|unknown" in classes
    with pytest.raises(ValueError, match="lacks column"):
        build_class_labels(frame, keys=("machine", "speed"))
    with pytest.raises(ValueError, match="not in the given class list"):
        build_class_labels(frame, classes=["fan|00|m-n_W|source"])


def test_root_column_keeps_equal_metadata_of_two_years_apart():
    from asd_utils.training.labels import ROOT_COLUMN, pool_roots

    year = index().iloc[3:6]  # slider|00|noAttribute|source x2, fan|00|m-n_W|source
    pooled = pool_roots([("dcase2024", year), ("dcase2025", year)])
    assert pooled[ROOT_COLUMN].tolist() == ["dcase2024"] * 3 + ["dcase2025"] * 3
    assert list(pooled.index) == list(range(6))
    # without the root: the same metadata collide in one class
    labels, classes = build_class_labels(pooled)
    assert classes == ["fan|00|m-n_W|source", "slider|00|noAttribute|source"]
    assert labels[0] == labels[3]
    # with the root: one class per year
    labels, classes = build_class_labels(pooled, root_column=ROOT_COLUMN)
    assert classes == ["dcase2024|fan|00|m-n_W|source", "dcase2024|slider|00|noAttribute|source",
                       "dcase2025|fan|00|m-n_W|source", "dcase2025|slider|00|noAttribute|source"]
    assert labels.tolist() == [1, 1, 0, 3, 3, 2]
    # encoding a subset against the class list keeps the years apart
    sub_labels, _ = build_class_labels(pooled.iloc[[3, 0]], classes=classes, root_column=ROOT_COLUMN)
    assert sub_labels.tolist() == [3, 1]


def test_root_column_default_is_backward_compatible_and_errors():
    from asd_utils.training.labels import pool_roots

    assert build_class_labels(index(), root_column=None)[1] == build_class_labels(index())[1]
    with pytest.raises(ValueError, match="lacks column"):
        build_class_labels(index(), root_column="data_root")
    with pytest.raises(ValueError, match="already one of the keys"):
        build_class_labels(index().assign(data_root="a"), keys=("data_root", "machine"), root_column="data_root")
    with pytest.raises(ValueError, match="distinct"):
        pool_roots([("a", index()), ("a", index())])
    with pytest.raises(ValueError, match="non-empty"):
        pool_roots([("", index())])
    with pytest.raises(ValueError, match="free of"):
        pool_roots([("a|b", index())])
    with pytest.raises(ValueError, match="at least one"):
        pool_roots([])
