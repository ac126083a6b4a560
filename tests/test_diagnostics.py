"""The Spearman matrix between scores."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from datadiet import ScoreTable
from datadiet.diagnostics import format_correlations, load_correlations, save_correlations, score_correlations


class RecordingLogger:
    def __init__(self):
        self.metrics = {}

    def log_metrics(self, metrics):
        self.metrics.update(metrics)


def test_matrix_matches_scipy_and_is_saved(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.random(40)
    table = ScoreTable({"a": a, "b": a + 0.5 * rng.random(40), "c": -a, "d": rng.random(40)})
    names, matrix = score_correlations(table)
    np.testing.assert_allclose(matrix, spearmanr(np.stack([table[n] for n in names], axis=1)).statistic, atol=1e-12)
    assert matrix[0, 2] == pytest.approx(-1.0)
    logger = RecordingLogger()
    save_correlations(table, tmp_path / "corr.csv", [logger])
    loaded_names, loaded = load_correlations(tmp_path / "corr.csv")
    assert loaded_names == names
    np.testing.assert_allclose(loaded, matrix, atol=1e-5)
    assert logger.metrics["diagnostics/spearman/a__c"] == pytest.approx(-1.0)
    assert "a" in format_correlations(names, matrix)


def test_pairwise_complete_with_nan():
    a = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    b = np.array([np.nan, 2.0, 1.0, 4.0, 5.0])
    _, matrix = score_correlations(ScoreTable({"a": a, "b": b}))
    assert matrix[0, 1] == pytest.approx(spearmanr([2.0, 3.0, 4.0], [2.0, 1.0, 4.0]).statistic)
