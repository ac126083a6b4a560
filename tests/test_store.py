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


def test_dtypes_columns_and_no_duplicated_raw_values(tmp_path):
    margin = np.array([2.0, -1.0, np.nan, 0.0], dtype=np.float32)
    forgetting = np.array([0.0, np.inf, 3.0, np.nan], dtype=np.float32)
    el2n = np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32)
    table = ScoreTable(
        {"el2n": el2n, "margin": -margin, "forgetting": forgetting},
        # equal as numbers in another dtype, a negation, and a value of its own
        raw={"el2n": el2n.astype(np.float64), "margin": margin, "forgetting": [0.0, 0.0, 3.0, np.nan]},
        labels=np.array([0, 1, 1, 2], dtype=np.int16),
        columns={"flagged": [False, True, False, False], "predicted_label": np.array([0, 2, 1, 2], dtype=np.int32)},
    )
    path = table.save(tmp_path / "scores.npz")
    # readable without datadiet: numpy and json alone
    with np.load(path, allow_pickle=False) as data:
        files = set(data.files)
        assert files == {"score/el2n", "score/margin", "score/forgetting", "raw/forgetting", "labels",
                         "column/flagged", "column/predicted_label", "__table__"}  # fmt: skip
        assert data["score/el2n"].dtype == np.float32 and data["column/flagged"].dtype == bool
        described = json.loads(str(data["__table__"]))["table"]
    sidecar = json.loads((tmp_path / "scores.json").read_text())
    assert described == sidecar["table"]
    assert sidecar["table"]["raw"] == {"el2n": "score", "margin": "-score", "forgetting": "raw/forgetting"}
    assert sidecar["table"]["columns"] == {"flagged": "bool", "predicted_label": "int32"}
    # members are stored, not deflated
    import zipfile

    assert {info.compress_type for info in zipfile.ZipFile(path).infolist()} == {zipfile.ZIP_STORED}
    loaded = ScoreTable.load(path)
    assert loaded["el2n"].dtype == np.float32 and loaded.labels.dtype == np.int16
    np.testing.assert_array_equal(loaded.raw("margin"), margin)
    np.testing.assert_array_equal(loaded.raw("forgetting"), [0.0, 0.0, 3.0, np.nan])
    np.testing.assert_array_equal(loaded.raw("el2n"), loaded["el2n"])
    np.testing.assert_array_equal(loaded.columns["flagged"], [False, True, False, False])
    assert loaded.columns["predicted_label"].dtype == np.int32
    assert (
        table.nbytes == 3 * 4 * 4 + 4 * 8 + 4 * 2 + 4 * 1 + 4 * 4
    )  # 3 float32 scores, 1 float64 raw, labels, 2 columns


def test_a_table_written_the_old_way_still_loads(tmp_path):
    # format 1: deflated npz with a raw copy of every score, provenance only in the sidecar
    path = tmp_path / "scores.npz"
    np.savez_compressed(
        path,
        **{
            "score/el2n": np.array([0.1, 0.5, np.nan]),
            "raw/el2n": np.array([0.1, 0.5, np.nan]),
            "score/margin": np.array([-2.0, 1.0, 0.5]),
            "raw/margin": np.array([2.0, -1.0, -0.5]),
            "labels": np.array([0, 1, 1]),
        },  # fmt: skip
    )
    (tmp_path / "scores.json").write_text(json.dumps({"scores": ["el2n", "margin"], "seed": 3}))
    loaded = ScoreTable.load(path)
    assert loaded.names == ["el2n", "margin"] and loaded.metadata == {"seed": 3}
    np.testing.assert_array_equal(loaded.raw("margin"), [2.0, -1.0, -0.5])
    assert loaded["el2n"].dtype == np.float64
    assert loaded.nbytes == 3 * 8 * 2 + 3 * 8  # the duplicated raw columns are not held twice
    loaded.save(path)  # rewritten in format 2, same content
    again = ScoreTable.load(path)
    np.testing.assert_array_equal(again.raw("margin"), [2.0, -1.0, -0.5])
    assert again.metadata == {"seed": 3}


def test_raw_values_and_columns_are_checked():
    with pytest.raises(ValueError, match="raw values for 'aum'"):
        ScoreTable({"el2n": [1.0]}, raw={"aum": [1.0]})
    with pytest.raises(ValueError, match="column 'ids' must be 1-D bool, integer or float"):
        ScoreTable({"el2n": [1.0]}, columns={"ids": np.array(["a"])})
    with pytest.raises(ValueError, match="one value per example"):
        ScoreTable({"el2n": [1.0, 2.0]}, columns={"flagged": [True]})


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "foreign_npz", "bad_description"])
def test_an_unreadable_table_is_named_with_what_to_do(tmp_path, damage):
    from datadiet._io import UnreadableFileError

    path = make_table().save(tmp_path / "scores.npz")
    content = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(content[: len(content) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a table at all")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "foreign_npz":
        np.savez(path, kept_indices=np.arange(3))
    else:
        arrays = dict(np.load(path))
        arrays["__table__"] = np.array("{not json")
        np.savez(path, **arrays)
    with pytest.raises(UnreadableFileError, match=r"cannot read .*scores\.npz: .*delete it"):
        ScoreTable.load(path)
