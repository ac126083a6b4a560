"""The transfer benchmark's selectors: one averaged over several initialisations is the mean of the single runs."""

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


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
