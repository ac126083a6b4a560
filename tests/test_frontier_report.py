"""The frontier's default-against-the-line report, worked by hand on a tiny table of runs."""

import pytest
from benchmarks.frontier import DEFAULT_27, default_against_line


def _run(method, label, seed, compute, acc):
    return {"regime": "x", "method": method, "label": label, "seed": seed, "compute": compute, "test_acc": acc}


def test_each_run_is_compared_with_its_own_seeds_line():
    rows = [
        _run("full", "all data, 4 ep", 0, 0.4, 0.90),
        _run("full", "all data, 10 ep", 0, 1.0, 0.96),
        _run("full", "all data, 4 ep", 1, 0.4, 0.88),
        _run("full", "all data, 10 ep", 1, 1.0, 0.94),
        _run("static", DEFAULT_27, 0, 0.6, 0.93),  # line at 0.6: 0.90 + 0.06 / 3 = 0.92 -> +1.00
        _run("static", DEFAULT_27, 1, 1.02, 0.94),  # kept whole: past the line, against its end 0.94 -> 0
        _run("static", DEFAULT_27, 2, 0.6, 0.99),  # no line for seed 2: not counted
        _run("static", "other", 0, 0.6, 0.50),
    ]
    report = default_against_line(rows, "x")
    assert report["gaps"] == pytest.approx({0: 1.0, 1: 0.0})
    assert report["gap_mean"] == pytest.approx(0.5) and report["gap_min"] == pytest.approx(0.0)
    assert report["gap_std"] == pytest.approx(0.7071067811865476)
    assert report["over_full_budget_mean"] == pytest.approx((-3.0 + 0.0) / 2)
    assert report["beyond_line"] == [1] and report["seeds"] == 2
    assert report["acc_mean"] == pytest.approx(93.5) and report["compute"] == pytest.approx(0.81)
    assert default_against_line(rows, "y") == {}
