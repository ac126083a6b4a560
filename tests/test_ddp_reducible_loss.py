"""ReducibleLossSelection on 2 CPU processes (gloo): each rank selects within its own shard of the large batch,
and training follows a plain-PyTorch reference of exactly that (the gradient is the mean over ranks).

The DDP run is a subprocess running ``ddp_scripts/reducible_loss_equivalence.py``; the 1-process run and the
reference run in this process.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _equivalence import load_script, one_and_two_processes

equivalence = load_script("reducible_loss_equivalence")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return one_and_two_processes(equivalence, tmp_path_factory.mktemp("ddp_rho"))


def steps(array):
    return [row[row >= 0].tolist() for row in array]


def replay(scenario, ranks):
    """Plain PyTorch: at each step, on each rank, the top ``max(1, ⌊0.5 n_B⌋)`` of the rank's large batch by loss −
    irreducible loss (stable: earlier first), kept in batch order; one SGD step on the mean over ranks of each
    rank's selected-batch mean loss. Returns the selections and the final weights."""
    num_examples, lr, _, _ = equivalence.SCENARIOS[scenario]
    x, y = equivalence.make_data(num_examples).tensors
    irreducible = equivalence.irreducible_losses(num_examples)
    model = equivalence.make_model(lr)
    net = model.net
    large = [steps(rank[f"{scenario}/large"]) for rank in ranks]
    chosen = [[] for _ in ranks]
    for step in range(len(large[0])):
        grads = []
        for rank, batches in enumerate(large):
            rows = np.array(batches[step])
            with torch.no_grad():
                losses = F.cross_entropy(net(x[rows]), y[rows], reduction="none").numpy()
            count = max(1, int(np.floor(0.5 * len(rows))))
            keep = np.sort(np.argsort(-(losses - irreducible[rows]), kind="stable")[:count])
            picked = rows[keep]
            chosen[rank].append(picked.tolist())
            net.zero_grad()
            F.cross_entropy(net(x[picked]), y[picked]).backward()
            grads.append([p.grad.clone() for p in net.parameters()])
        with torch.no_grad():
            for index, parameter in enumerate(net.parameters()):
                parameter -= lr * sum(g[index] for g in grads) / len(grads)
    weights = torch.cat([p.detach().flatten() for p in net.parameters()]).numpy()
    return chosen, weights


@pytest.mark.parametrize("scenario", list(equivalence.SCENARIOS))
def test_each_rank_selects_within_its_shard_and_training_matches_the_reference(runs, scenario):
    single, rank0, rank1 = runs
    for ranks in ([single], [rank0, rank1]):
        chosen, weights = replay(scenario, ranks)
        for rank, expected in zip(ranks, chosen):
            assert steps(rank[f"{scenario}/selected"]) == expected
        for rank in ranks:
            np.testing.assert_allclose(rank[f"{scenario}/weights"], weights, rtol=0, atol=1e-12)
    if scenario == "trained":  # the model moved, so later selections depended on the synchronised weights
        assert np.abs(rank0["trained/weights"] - rank0["trained/initial"]).max() > 1e-2


def test_shards_cover_the_candidates_and_counts_are_global(runs):
    single, rank0, rank1 = runs
    num_examples, _, epochs, _ = equivalence.SCENARIOS["frozen"]
    per_epoch = len(steps(rank0["frozen/large"])) // epochs
    for epoch in range(epochs):
        window = slice(epoch * per_epoch, (epoch + 1) * per_epoch)
        large = [
            i for batch in steps(rank0["frozen/large"])[window] + steps(rank1["frozen/large"])[window] for i in batch
        ]
        assert sorted(set(large)) == [i for i in range(num_examples) if i != 7]  # the NaN one never comes
        assert len(large) == 50  # 50 candidates: no padding
    # 25 per rank in large batches of 8, 8, 8, 1: 4 + 4 + 4 + 1 trained on, the batch of one without a scoring
    # forward (nothing to choose); one process: 8 x 6 + 2, of which 4 x 6 + 1
    for rank in (rank0, rank1):
        np.testing.assert_array_equal(rank["frozen/scored_per_epoch"], [48, 48])
        np.testing.assert_array_equal(rank["frozen/presentations_per_epoch"], [26, 26])
    np.testing.assert_array_equal(single["frozen/scored_per_epoch"], [50, 50])
    np.testing.assert_array_equal(single["frozen/presentations_per_epoch"], [25, 25])
    selected = np.bincount(
        [i for batch in steps(rank0["frozen/selected"]) + steps(rank1["frozen/selected"]) for i in batch],
        minlength=num_examples,
    )
    np.testing.assert_array_equal(rank0["frozen/times_selected"], selected)
    np.testing.assert_array_equal(rank1["frozen/times_selected"], selected)
