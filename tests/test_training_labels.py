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
