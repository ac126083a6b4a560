"""The transfer benchmark: a selector averaged over initialisations is the mean of the single runs; its table
compares a selector with B's line and random on the seeds both have."""

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def transfer(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.transfer as module

    yield module
    sys.modules.pop("benchmarks.transfer", None)


@pytest.fixture
def foundation(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    threads = torch.get_num_threads()
    import benchmarks._foundation as module

    yield module
    torch.set_num_threads(threads)
    sys.modules.pop("benchmarks._foundation", None)


def test_scores_averaged_over_initialisations_are_the_mean_of_each_initialisations_run(foundation, monkeypatch):
    dm = foundation.data_maker("mnist1d", quick=True)()
    tiny = functools.partial(foundation.MLP, hidden_sizes=(16,))
    monkeypatch.setitem(foundation.MODEL_SELECTORS, "one", (tiny, 1e-3, 1, "el2n", 1))
    monkeypatch.setitem(foundation.MODEL_SELECTORS, "two", (tiny, 1e-3, 1, "el2n", 2))
    seed = 3
    first, first_flops = foundation.selector_scores("one", dm, seed)
    second, second_flops = foundation.selector_scores("one", dm, seed + 1000)  # the second initialisation's seed
    averaged, flops = foundation.selector_scores("two", dm, seed)
    assert not np.allclose(first, second)  # two different initialisations
    np.testing.assert_allclose(averaged, (first + second) / 2, rtol=1e-6)
    assert flops == pytest.approx(first_flops + second_flops)


def test_gains_are_paired_by_seed(transfer):
    def row(selector, seed, accuracy):
        return {"learner": "b", "selector": selector, "keep": 0.5, "seed": seed, "epochs": 10, "test_acc": accuracy,
                "selection_flops": 0.0, "learner_full_flops": 1.0}  # fmt: skip

    line = [row(transfer.LINE, seed, acc) for seed, acc in [(0, 0.90), (1, 0.91), (2, 0.92)]]
    random = [row("random", seed, acc) for seed, acc in [(0, 0.89), (1, 0.90)]]
    chosen = [row("a", seed, acc) for seed, acc in [(0, 0.91), (1, 0.93)]]
    table = {entry["selector"]: entry for entry in transfer.summarise(line + random + chosen, epochs=10)}
    # seeds 0 and 1 only: (0.01 + 0.02) / 2 over the line (unpaired, 0.92 - 0.91 = 1.0), (0.02 + 0.03) / 2 over random
    assert table["a"]["vs_all_data_pt"] == pytest.approx(1.5)
    assert table["a"]["vs_random_pt"] == pytest.approx(2.5)
    assert table["a"]["pays"] is True
    assert table["random"]["vs_all_data_pt"] == pytest.approx(-1.0)
    assert table[transfer.LINE]["vs_random_pt"] == pytest.approx(1.0)
