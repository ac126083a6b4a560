"""ScoreTable persistence and validation."""

import json

import numpy as np
import pytest

from datadiet import ScoreTable


def make_table():
    return ScoreTable(
        {"el2n": [0.1, 0.5, np.nan], "margin": [-2.0, 1.0, 0.5]},
        raw={"margin": [2.0, -1.0, -0.5]},
        labels=[0, 1, 1],
        metadata={"seed": 3, "dataset": {"fingerprint": "abc"}},
    )


def test_round_trip(tmp_path):
    table = make_table()
    path = table.save(tmp_path / "scores.npz")
    loaded = ScoreTable.load(path)
    assert loaded.names == ["el2n", "margin"]
    np.testing.assert_array_equal(loaded["el2n"], table["el2n"])
    np.testing.assert_array_equal(loaded.raw("margin"), [2.0, -1.0, -0.5])
    np.testing.assert_array_equal(loaded.raw("el2n"), loaded["el2n"])
    assert loaded.labels.tolist() == [0, 1, 1]
    assert loaded.metadata == {"seed": 3, "dataset": {"fingerprint": "abc"}}
    assert json.loads((tmp_path / "scores.json").read_text())["scores"] == ["el2n", "margin"]
    # atomic: nothing but the two files is left behind, and the npz holds no pickles
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json", "scores.npz"]
    np.load(path, allow_pickle=False)


def test_unknown_score_lists_names():
    with pytest.raises(KeyError, match="no score 'aum'.*el2n, margin"):
        make_table()["aum"]


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="one value per example"):
        ScoreTable({"a": [1.0, 2.0], "b": [1.0]})
    with pytest.raises(ValueError, match="labels"):
        ScoreTable({"a": [1.0, 2.0]}, labels=[1])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no score table"):
        ScoreTable.load(tmp_path / "nope.npz")
