"""DynamicPruning on 2 CPU processes (gloo) keeps the 1-process examples each epoch and reaches its losses.

The DDP run is a subprocess running ``ddp_scripts/dynamic_pruning_equivalence.py``; the 1-process
reference runs the same functions in this process.
"""

import numpy as np
import pytest

from _equivalence import load_script, one_and_two_processes

equivalence = load_script("dynamic_pruning_equivalence")


pytestmark = pytest.mark.slow  # every test reads the two-process (gloo) run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return one_and_two_processes(equivalence, tmp_path_factory.mktemp("ddp_dynamic"))


@pytest.mark.parametrize("scenario", list(equivalence.SCENARIOS))
def test_two_processes_keep_the_one_process_examples_each_epoch(runs, scenario):
    single, rank0, rank1 = runs
    epochs = equivalence.SCENARIOS[scenario][2]
    kept = single[f"{scenario}/kept_per_epoch"]
    assert (kept < kept[0]).any(), "some epoch must be pruned for the test to mean much"
    np.testing.assert_array_equal(rank0[f"{scenario}/kept_per_epoch"], kept)
    np.testing.assert_array_equal(rank1[f"{scenario}/kept_per_epoch"], kept)
    for epoch in range(epochs):
        expected = single[f"{scenario}/seen_epoch{epoch}"]
        assert len(set(expected.tolist())) == len(expected) == kept[epoch]
        seen = np.concatenate([rank0[f"{scenario}/seen_epoch{epoch}"], rank1[f"{scenario}/seen_epoch{epoch}"]])
        assert set(seen.tolist()) == set(expected.tolist()), f"epoch {epoch}"
        assert len(seen) == kept[epoch] + kept[epoch] % 2  # each once, plus one padding repeat when odd
    presented = rank0[f"{scenario}/presentations_per_epoch"]
    np.testing.assert_array_equal(presented, kept + kept % 2)  # the compute figure counts the padding
    np.testing.assert_array_equal(rank1[f"{scenario}/presentations_per_epoch"], presented)


@pytest.mark.parametrize("scenario", list(equivalence.SCENARIOS))
def test_two_processes_reach_the_one_process_losses(runs, scenario):
    single, rank0, rank1 = runs
    if scenario == "trained":  # padding would change the full-batch gradient: exact only with even kept sets
        assert np.all(single["trained/kept_per_epoch"] % 2 == 0)
    np.testing.assert_array_equal(rank0[f"{scenario}/scores"], rank1[f"{scenario}/scores"])
    np.testing.assert_allclose(rank0[f"{scenario}/scores"], single[f"{scenario}/scores"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rank0[f"{scenario}/weights"], single[f"{scenario}/weights"], rtol=1e-10, atol=1e-12)
