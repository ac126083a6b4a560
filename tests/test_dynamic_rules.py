"""Every registered dynamic-pruning rule keeps the contract DynamicPruning relies on, is picked by name, and survives
a resume; a new rule is one registered function."""

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import TensorDataset

from _modules import LitClassifier, quiet_trainer
from _recorder import BatchRecorder
from datadiet import DynamicPruning, PruningDataModule
from datadiet.callbacks.dynamic_rules import RULES, list_rules, register_rule

BUILT_IN = ["infobatch", "seta"]


def losses(num_examples=40, seed=0):
    scores = np.random.default_rng(seed).exponential(size=num_examples)
    scores[:3] = np.nan  # never presented
    return scores


@pytest.mark.parametrize("name", list_rules())
@pytest.mark.parametrize("step", [0, 3, None])
def test_every_rule_returns_a_mask_and_weights_the_same_for_the_same_draws(name, step):
    rule = RULES.get(name)
    keep, weights = rule(losses(), 0.5, np.random.default_rng(1), step)
    again, again_weights = rule(losses(), 0.5, np.random.default_rng(1), step)
    assert keep.dtype == bool and keep.shape == (40,) and weights.dtype == np.float32 and weights.shape == (40,)
    assert np.isfinite(weights).all() and (weights > 0).all() and keep.any()
    np.testing.assert_array_equal(keep, again)
    np.testing.assert_array_equal(weights, again_weights)


@pytest.mark.parametrize("name", list_rules())
def test_every_rule_keeps_everything_at_prune_ratio_zero(name):
    keep, weights = RULES.get(name)(losses(), 0.0, np.random.default_rng(1), 0)
    assert keep.all() and (weights == 1).all()


def test_the_built_in_rules_are_registered_and_an_unknown_one_is_refused():
    assert set(BUILT_IN) <= set(list_rules())
    with pytest.raises(ValueError, match="`rule` can be .*infobatch.*seta.*, got 'infobach'"):
        DynamicPruning(rule="infobach")
    with pytest.raises(ValueError, match=r"`rule_options` \['depth'\] are not options of the rule 'seta'"):
        DynamicPruning(rule="seta", rule_options={"depth": 2})


def run(rule, ckpt_path=None, run_dir=None, rule_options=None):
    torch.manual_seed(0)
    x = torch.randn(48, 4)
    dm = PruningDataModule(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)
    pruning = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.25, rule=rule, rule_options=rule_options)
    record = BatchRecorder()
    callbacks = [record, pruning]
    if run_dir is not None:
        callbacks.append(ModelCheckpoint(dirpath=run_dir, filename="{epoch}", save_top_k=-1))
    quiet_trainer(max_epochs=4, callbacks=callbacks, enable_checkpointing=run_dir is not None).fit(
        LitClassifier(nn.Linear(4, 2), lr=0.5), datamodule=dm, ckpt_path=ckpt_path
    )
    return pruning, record


@pytest.mark.parametrize("name", list_rules())
def test_a_resumed_fit_of_every_rule_presents_what_an_uninterrupted_one_does(name, tmp_path):
    full, full_record = run(name, run_dir=tmp_path)
    resumed, record = run(name, ckpt_path=tmp_path / "epoch=1.ckpt")
    assert resumed.kept_per_epoch == full.kept_per_epoch and full.kept_per_epoch[1] < 48
    assert [record.presented[epoch] for epoch in (2, 3)] == [full_record.presented[epoch] for epoch in (2, 3)]
    np.testing.assert_array_equal(resumed.scores, full.scores)


def test_a_new_rule_is_one_registered_function():
    @register_rule("every_other_test_rule")
    def every_other(scores, prune_ratio, rng, step, offset=0):
        """Test rule: every other example (from ``offset``) on pruning epochs, all of them when annealing."""
        keep = np.ones(len(scores), dtype=bool)
        if step is not None:
            keep[offset::2] = False
        return keep, np.ones(len(scores), dtype=np.float32)

    try:
        _, record = run("every_other_test_rule", rule_options={"offset": 1})
        assert sorted(record.presented[1]) == list(range(0, 48, 2))  # epoch 0 too, but nothing is known then
        assert sorted(record.presented[3]) == list(range(48))  # annealed
    finally:
        RULES._entries.pop("every_other_test_rule")
