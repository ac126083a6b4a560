"""Distributed scoring: shards of ``trainer.predict`` merged into one table, equal on 1 and 2 processes and to
numpy; a folder of shards read wherever a score file is."""

import numpy as np
import pytest

from _equivalence import load_script, one_and_two_processes
from datadiet import ScoreShardWriter, merge_score_shards
from datadiet.files import UnreadableFileError, atomic_save_npz
from datadiet.subset import import_score_table


def _numpy_scores(x, y, weight, bias):
    logits = x.astype(np.float64) @ weight.T + bias
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    onehot = np.eye(weight.shape[0])[y]
    el2n = np.linalg.norm(probabilities - onehot, axis=1)
    others = np.where(onehot.astype(bool), -np.inf, logits)
    margin = logits[np.arange(len(y)), y] - others.max(1)
    loss = -np.log(probabilities[np.arange(len(y)), y])
    return {"el2n": el2n, "margin": margin, "loss": loss}


@pytest.mark.slow
def test_two_processes_shards_merge_to_the_one_process_table_and_numpy(tmp_path):
    script = load_script("score_shards_equivalence")
    single, rank0, rank1 = one_and_two_processes(script, tmp_path)
    expected = _numpy_scores(single["x"], single["y"], single["weight"], single["bias"])
    for name, values in expected.items():
        np.testing.assert_allclose(single[f"raw/{name}"], values, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(rank0[f"raw/{name}"], single[f"raw/{name}"], err_msg=name)
        np.testing.assert_array_equal(rank1[f"raw/{name}"], single[f"raw/{name}"], err_msg=name)
    np.testing.assert_allclose(single["score/margin"], -expected["margin"], rtol=1e-5, atol=1e-6)  # larger = harder
    np.testing.assert_array_equal(rank0["labels"], single["y"])
    # each rank holds its share (Lightning's predict sampler does not pad: 26 + 25), not all 51
    assert int(single["shard_examples"]) == 51
    assert (int(rank0["shard_examples"]), int(rank1["shard_examples"])) == (26, 25)


def _shard(folder, rank, world, index, el2n, size):
    atomic_save_npz(
        folder / f"scores-rank{rank:05d}-of-{world:05d}.npz",
        {
            "original_index": np.asarray(index, dtype=np.int64),
            "label": np.zeros(len(index), dtype=np.int64),
            "num_examples": np.asarray(size),
            "raw/el2n": np.asarray(el2n, np.float32),
        },
    )


def test_a_folder_of_shards_is_read_as_a_score_table(tmp_path):
    _shard(tmp_path, 0, 2, [0, 2, 4], [0.1, 0.3, 0.5], 5)
    _shard(tmp_path, 1, 2, [1, 3, 0], [0.2, 0.4, 0.1], 5)  # example 0 again: the sampler's padding
    table = import_score_table(tmp_path)
    np.testing.assert_allclose(table["el2n"], [0.1, 0.2, 0.3, 0.4, 0.5])
    assert merge_score_shards(tmp_path).num_examples == 5


@pytest.mark.parametrize(
    ("shards", "match"),
    [
        ([(0, 2, [0, 1], [0.1, 0.2])], r"1 shards of world sizes \[2\]"),
        ([(0, 2, [0, 1], [0.1, 0.2]), (1, 2, [2], [0.3])], r"1 of 4 examples were scored by no rank"),
        ([(0, 2, [0, 1], [0.1, 0.2]), (1, 2, [2, 3, 0], [0.3, 0.4, 0.9])], r"two ranks with different raw/el2n"),
    ],
)
def test_an_incomplete_or_inconsistent_pass_is_refused(tmp_path, shards, match):
    for rank, world, index, values in shards:
        _shard(tmp_path, rank, world, index, values, 4)
    with pytest.raises(UnreadableFileError, match=match):
        merge_score_shards(tmp_path)


def test_writer_refuses_a_score_that_needs_training(tmp_path):
    with pytest.raises(ValueError, match=r"got 'forgetting'"):
        ScoreShardWriter(tmp_path, scores=["forgetting"])
