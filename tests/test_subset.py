"""Importing (index, score) files, and exporting / loading foundation subsets."""

import json

import numpy as np
import pytest

from datadiet import ScoreTable
from datadiet.subset import export_foundation_subset, import_score_table, load_foundation_subset


def test_import_csv_with_missing_rows(tmp_path):
    path = tmp_path / "published.csv"
    path.write_text("index,score\n2,0.5\n0,1.5\n3,-1\n")
    table = import_score_table(path, name="el2n", num_examples=5)
    np.testing.assert_array_equal(table["el2n"], [1.5, np.nan, 0.5, -1.0, np.nan])
    assert table.metadata["imported_from"] == str(path)


def test_import_npz_and_easiness_orientation(tmp_path):
    np.savez(tmp_path / "aum.npz", idx=np.array([1, 0]), value=np.array([2.0, -3.0]))
    table = import_score_table(
        tmp_path / "aum.npz", name="aum", index_column="idx", score_column="value", larger_is_harder=False
    )
    np.testing.assert_array_equal(table["aum"], [3.0, -2.0])
    np.testing.assert_array_equal(table.raw("aum"), [-3.0, 2.0])


def test_import_saved_table_and_errors(tmp_path):
    ScoreTable({"el2n": np.arange(3.0)}).save(tmp_path / "scores.npz")
    assert import_score_table(tmp_path / "scores.npz").names == ["el2n"]
    (tmp_path / "dup.csv").write_text("index,score\n1,0\n1,2\n")
    with pytest.raises(ValueError, match="unique"):
        import_score_table(tmp_path / "dup.csv")
    (tmp_path / "cols.csv").write_text("i,s\n1,0\n")
    with pytest.raises(ValueError, match="column"):
        import_score_table(tmp_path / "cols.csv")
    (tmp_path / "big.csv").write_text("index,score\n5,0\n")
    with pytest.raises(ValueError, match="out of range"):
        import_score_table(tmp_path / "big.csv", num_examples=3)


def test_foundation_subset_round_trip(tmp_path):
    table = ScoreTable(
        {"el2n": np.arange(6.0), "margin": -np.arange(6.0)},
        metadata={"probe_fingerprint": "abc", "dataset": {"fingerprint": "d1", "name": "toy"}},
    )
    path = export_foundation_subset(
        tmp_path / "subset.npz",
        np.array([4, 1, 5]),
        table,
        score="el2n",
        provenance={"pruning": {"keep_fraction": 0.5}},
    )
    subset = load_foundation_subset(path)
    np.testing.assert_array_equal(subset.kept_indices, [1, 4, 5])
    np.testing.assert_array_equal(subset.kept_scores, [1.0, 4.0, 5.0])
    np.testing.assert_array_equal(subset.scores["margin"], [-1.0, -4.0, -5.0])
    assert subset.metadata["probe_fingerprint"] == "abc" and subset.metadata["pruning"]["keep_fraction"] == 0.5
    assert json.loads(path.with_suffix(".json").read_text())["num_examples"] == 6
    subset.check_dataset(6, "d1")
    with pytest.raises(ValueError, match="fingerprint"):
        subset.check_dataset(6, "other")
    with pytest.raises(ValueError, match="6 training examples"):
        subset.check_dataset(7)
    with pytest.raises(ValueError, match="kept_indices"):
        load_foundation_subset(ScoreTable({"a": np.zeros(2)}).save(tmp_path / "not_subset.npz"))


@pytest.mark.slow
def test_app_multi_seed_probe_then_reuse_subset_and_imported_scores(tmp_path):
    """One app run with two probe seeds and every new score, then two runs that skip the probe."""
    from datadiet.app import run
    from test_app import compose_small

    scores = (
        "[aum,confidence,variability,correctness,entropy,uncertainty_margin,loss,grand,prototype_distance,rho_loss]"
    )
    first = tmp_path / "first"
    summary = run(
        compose_small(
            first,
            f"probe.scores={scores}",
            "probe.seeds=2",
            "probe.epochs=1",
            "probe.rho_loss.epochs=1",
            "pruning.score=aum",
            "pruning.strategy=ccs",
            "+pruning.options.beta=0.1",
            "+pruning.options.num_strata=5",
            "max_epochs=1",
            f"probe.rho_loss.cache_dir={tmp_path / 'cache'}",
        )
    )
    table = ScoreTable.load(first / "scores.npz")
    assert table.metadata["num_seeds"] == 2 and len(table.metadata["seed_spearman"]["aum"]) == 2
    assert (first / "probe_seed0" / "scores.npz").exists() and (first / "probe_seed1" / "scores.npz").exists()
    assert np.isfinite(table["rho_loss"]).all()
    header = (first / "score_correlations.csv").read_text().splitlines()[0]
    assert header.split(",")[1:] == table.names

    second = tmp_path / "second"
    reused = run(compose_small(second, f"pruning.subset_path={first / 'kept_indices.npz'}", "max_epochs=1"))
    assert reused["probe_examples_seen"] == 0 and reused["examples_kept"] == summary["examples_kept"]
    np.testing.assert_array_equal(
        load_foundation_subset(second / "kept_indices.npz").kept_indices,
        load_foundation_subset(first / "kept_indices.npz").kept_indices,
    )

    csv = tmp_path / "published.csv"
    csv.write_text("index,score\n" + "".join(f"{i},{i % 7}\n" for i in range(table.num_examples)))
    third = tmp_path / "third"
    imported = run(
        compose_small(
            third,
            f"probe.scores_path={csv}",
            "pruning.score=published",
            "max_epochs=1",
            "pruning.keep_fraction=0.5",
            "pruning.strategy=easy",
        )
    )
    kept = load_foundation_subset(third / "kept_indices.npz")
    assert imported["probe_examples_seen"] == 0 and kept.kept_scores.max() <= 3
