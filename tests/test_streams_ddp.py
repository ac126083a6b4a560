"""Streams under DDP (2 CPU processes, gloo): each rank filters its own shard, the statistics and kept sets
are the 1-process ones, and every kept example is trained on each epoch."""

import numpy as np
import pytest

from _equivalence import load_script, one_and_two_processes

pytest.importorskip("litdata")
stream_equivalence = load_script("stream_equivalence")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_stream")
    stream_equivalence.write_stream(out)
    return one_and_two_processes(stream_equivalence, out)


@pytest.mark.slow
def test_scores_and_kept_set_equal_the_one_process_run(runs):
    single, rank0, rank1 = runs
    for key in [k for k in single if k.startswith("probe/")] + ["in_run/el2n", "in_run/kept"]:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
        np.testing.assert_allclose(rank0[key], single[key], rtol=1e-10, atol=1e-12, err_msg=key)
    assert len(single["in_run/kept"]) == int(0.3 * stream_equivalence.NUM_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("run", ["in_run", "dynamic"])
def test_each_rank_trains_on_its_shard_of_the_kept_examples(runs, run):
    single, rank0, rank1 = runs
    for epoch in range(3):
        expected = set(single[f"{run}/seen_epoch{epoch}"].tolist())
        seen0, seen1 = rank0[f"{run}/seen_epoch{epoch}"], rank1[f"{run}/seen_epoch{epoch}"]
        # (the run ending at all shows both ranks ran the same number of steps: DDP would wait forever)
        assert set(seen0.tolist()) | set(seen1.tolist()) == expected  # every kept example, nothing else
        assert not set(seen0.tolist()) & set(seen1.tolist())  # each from one rank's shard
    assert len(expected) < stream_equivalence.NUM_EXAMPLES
