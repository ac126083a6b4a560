"""Compute accounting: FLOPs per example against hand counts, and the account's arithmetic."""

import pytest
import torch
from torch import nn

from datadiet.compute import (
    TRAIN_FORWARD_MULTIPLE,
    ComputeAccount,
    forward_flops_per_example,
    full_data_flops,
    run_flops,
)


def test_linear_is_two_in_out_per_example():
    layer = nn.Linear(13, 7)
    assert forward_flops_per_example(layer, torch.randn(5, 13)) == 2 * 13 * 7


def test_conv1d_by_hand():
    # L_out = floor((40 + 2·1 − 4) / 2) + 1 = 20; each output is in_channels·kernel multiply-adds.
    conv = nn.Conv1d(3, 5, kernel_size=4, stride=2, padding=1)
    per_example = 2 * (5 * 20) * (3 * 4)
    assert forward_flops_per_example(conv, torch.randn(6, 3, 40)) == per_example


def test_network_sums_its_layers_and_keeps_its_mode():
    net = nn.Sequential(nn.Conv1d(1, 4, kernel_size=3), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 38, 10))
    net.train()
    expected = 2 * (4 * 38) * (1 * 3) + 2 * (4 * 38) * 10
    assert forward_flops_per_example(net, torch.randn(3, 1, 40)) == expected
    assert net.training


def test_bad_batches_are_refused():
    with pytest.raises(TypeError, match="example_batch"):
        forward_flops_per_example(nn.Linear(2, 2), [[0.0, 1.0]])
    with pytest.raises(ValueError, match="empty"):
        forward_flops_per_example(nn.Linear(2, 2), torch.zeros(0, 2))


def test_run_flops_counts_presentations_thrice_and_scoring_once():
    assert TRAIN_FORWARD_MULTIPLE == 3.0
    assert run_flops(100, 40, 2.0) == 2.0 * (3 * 100 + 40)
    assert full_data_flops(1000, 4, 10.0) == 3 * 10.0 * 4000


def test_account_with_one_model_is_presentations_plus_a_third_per_scored_example():
    # All data for 4 epochs of 1000 examples = 4000 presentations. A same-model probe of 1 epoch and a
    # scoring pass, then 4 epochs on half: (1000 + 1000/3 + 2000) / 4000 presentations' worth.
    account = ComputeAccount(
        flops_per_example=10.0,
        train_presentations=2000,
        probe_flops_per_example=10.0,
        probe_presentations=1000,
        probe_scored=1000,
    )
    reference = full_data_flops(1000, 4, 10.0)
    assert account.ratio_to(reference) == pytest.approx((1000 + 1000 / 3 + 2000) / 4000)
    assert account.total_flops == account.probe_flops + account.train_flops
    record = account.as_dict()
    assert record["train_flops"] == 3 * 10.0 * 2000 and record["probe_flops"] == 10.0 * (3 * 1000 + 1000)


def test_account_with_a_small_probe_and_an_in_run_pass():
    account = ComputeAccount(
        flops_per_example=100.0,
        train_presentations=10,
        probe_flops_per_example=1.0,
        probe_presentations=50,
        probe_scored=20,
        in_run_scored=4,
    )
    assert account.probe_flops == 1.0 * (3 * 50 + 20) + 100.0 * 4
    assert account.train_flops == 100.0 * 3 * 10


@pytest.mark.parametrize("bad", [-1, float("nan"), True, "3"])
def test_account_refuses_bad_counts(bad):
    with pytest.raises(ValueError, match="train_presentations"):
        ComputeAccount(flops_per_example=1.0, train_presentations=bad)


def test_ratio_needs_a_positive_reference():
    with pytest.raises(ValueError, match="reference_flops"):
        ComputeAccount(flops_per_example=1.0).ratio_to(0.0)
