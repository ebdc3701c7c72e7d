"""The held-out split: a function of the ids alone, disjoint by construction, and checked."""

import pytest

from motion_sim.data import split


def test_split_is_order_independent_and_sized():
    ids = [f"scene{i:03d}" for i in range(20)]
    train, val = split.split_ids(ids, 0.25)
    assert len(val) == 5 and len(train) == 15
    assert set(train) | set(val) == set(ids) and not set(train) & set(val)
    assert split.split_ids(list(reversed(ids)) + ids[:3], 0.25) == (train, val)  # dupes, order


def test_validation_is_the_lowest_id_ranks():
    # The rank is a pure function of the id, so a scene's side depends on the ids, not on
    # file order or on which source it was read from.
    ids = [f"s{i}" for i in range(10)]
    _, val = split.split_ids(ids, 0.5)
    threshold = sorted(split.id_rank(i) for i in ids)[4]
    assert all(split.id_rank(i) <= threshold for i in val)
    assert split.id_rank("637f20cafde22ff8") == split.id_rank("637f20cafde22ff8")


def test_fraction_bounds_and_overlap_error():
    assert split.split_ids(["a", "b"], 0.0) == (["a", "b"], [])
    assert split.split_ids(["a", "b"], 1.0) == ([], ["a", "b"])
    with pytest.raises(split.SplitError, match="val_fraction"):
        split.split_ids(["a"], 1.5)
    with pytest.raises(split.SplitError, match=r"1 scenario id\(s\) are in both.*'b'"):
        split.assert_disjoint(["a", "b"], ["b", "c"])
    split.assert_disjoint(["a"], ["c"])
