"""Multi-seed probes: averaged tables and per-seed Spearman correlations."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import spearmanr

from datadiet import ScoreTable
from datadiet.app.ensemble import average_table_files, average_tables, run_probe_seeds


def tables():
    rng = np.random.default_rng(0)
    base = rng.random(50)
    out = []
    for seed in range(3):
        noisy = base + 0.3 * rng.random(50)
        forgetting = np.where(rng.random(50) < 0.1, np.inf, rng.integers(0, 4, 50).astype(float))
        noisy[seed] = np.nan  # seed k did not see example k
        out.append(
            ScoreTable(
                {"el2n": noisy, "forgetting": forgetting},
                raw={"el2n": noisy},
                labels=np.arange(50) % 2,
                metadata={"probe_fingerprint": f"fp{seed}"},
            )
        )
    return out


def test_average_matches_numpy_and_ignores_unseen():
    group = tables()
    averaged = average_tables(group)
    stack = np.stack([t["el2n"] for t in group])
    np.testing.assert_allclose(averaged["el2n"][3:], stack[:, 3:].mean(axis=0))
    assert averaged["el2n"][0] == pytest.approx(np.nanmean(stack[:, 0]))
    assert np.isinf(averaged["forgetting"][np.isinf(group[0]["forgetting"])]).all()
    np.testing.assert_array_equal(averaged.labels, group[0].labels)


def test_seed_spearman_matches_scipy():
    group = tables()
    matrix = np.array(average_tables(group).metadata["seed_spearman"]["el2n"])
    for i in range(3):
        for j in range(3):
            a, b = group[i]["el2n"], group[j]["el2n"]
            both = ~(np.isnan(a) | np.isnan(b))
            assert matrix[i, j] == pytest.approx(spearmanr(a[both], b[both]).statistic)
    mean = average_tables(group).metadata["seed_spearman_mean"]["el2n"]
    assert mean == pytest.approx(matrix[np.triu_indices(3, 1)].mean())


def test_mismatched_tables_rejected(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        average_tables([])
    with pytest.raises(ValueError, match="differ"):
        average_tables([ScoreTable({"a": np.zeros(3)}), ScoreTable({"b": np.zeros(3)})])
    paths = [t.save(tmp_path / f"s{i}.npz") for i, t in enumerate(tables())]
    np.testing.assert_array_equal(average_table_files(paths)["forgetting"], average_tables(tables())["forgetting"])


def test_run_probe_seeds_loops_with_distinct_seeds(tmp_path):
    seen = []

    def fake_probe(cfg, datamodule, loggers, output_dir):
        seen.append((int(cfg.seed), int(cfg.probe.seeds), output_dir.name))
        return tables()[len(seen) - 1], {"probe_wall_time_s": 1.0, "probe_examples_seen": 10}

    class Plan:  # the two fields of a RunPlan that run_probe_seeds reads, and its probe_seed(k)
        def __init__(self, seed, seeds):
            self.seed, self.probe = seed, SimpleNamespace(seeds=seeds)

        def probe_seed(self, k):
            return Plan(self.seed + k, 1)

    table, costs = run_probe_seeds(fake_probe, Plan(7, 3), None, [], tmp_path, lambda c: {"probe_fingerprint": "avg"})
    assert seen == [(7, 1, "probe_seed0"), (8, 1, "probe_seed1"), (9, 1, "probe_seed2")]
    assert costs == {"probe_wall_time_s": 3.0, "probe_examples_seen": 30}
    assert table.metadata["seeds"] == [7, 8, 9] and table.metadata["probe_fingerprint"] == "avg"
    assert ScoreTable.load(tmp_path / "scores.npz").metadata["num_seeds"] == 3
