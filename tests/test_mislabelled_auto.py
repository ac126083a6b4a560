"""PruneDuringFit(mislabelled="auto"): clean labels train exactly as mislabelled=None; noisy ones train longer on
all data, exclude the flagged and keep a fraction lowered to the planned compute (worked by hand below)."""

import copy

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch import nn
from torch.utils.data import TensorDataset

from _modules import LitClassifier, quiet_trainer
from datadiet import PruneDuringFit, PruningDataModule
from datadiet.callbacks._noisy_labels import NoiseDecision, affordable_extra_epochs, noisy_keep_fraction
from test_label_issues import D, K, N, noisy_data, reference_issues


def clean_data():
    """Three well-separated clusters, labels all correct (the detector flags nothing here)."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, K, size=N)
    x = rng.normal(size=(N, D)) * 0.3
    x[:, :K] += 3.0 * np.eye(K)[y]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


class Weights(Callback):
    """Test-owned: the weights at the end of each epoch (listed first: before PruneDuringFit's scoring pass)."""

    def __init__(self):
        self.at: dict[int, dict] = {}
        self.presented: dict[int, list[int]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.presented.setdefault(trainer.current_epoch, []).extend(trainer.datamodule.batch_original_index.tolist())

    def on_train_epoch_end(self, trainer, pl_module):
        self.at[trainer.current_epoch] = copy.deepcopy(pl_module.state_dict())


def fit(x, y, max_epochs=8, callbacks=(), ckpt_path=None, **options):
    torch.manual_seed(0)
    prune = PruneDuringFit(after_epochs=2, keep_fraction=0.5, seed=2, **options)
    weights = Weights()
    model = LitClassifier(nn.Linear(D, K), 0.3)
    dm = PruningDataModule(TensorDataset(x, y), batch_size=32)
    quiet_trainer(
        max_epochs=max_epochs, callbacks=[weights, prune, *callbacks], enable_checkpointing=bool(callbacks)
    ).fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return prune, model, weights


def test_the_decision_and_the_lowered_keep_fraction_by_hand():
    # E = 15, p = 2, k = 0.5, x = 1, a scoring pass = 1/3 presentation:
    # planned 2 + 13 * 0.5 + 1/3 = 8.8333; extended 3 + 12 k' + 2/3 -> k' = (6.5 - 1 - 1/3) / 12 = 31/72
    assert noisy_keep_fraction(0.5, 15, 2, 1) == pytest.approx(31 / 72)
    assert noisy_keep_fraction(0.5, 15, 2, 0) == 0.5  # no extension, no second pass: the same compute
    at_threshold = NoiseDecision.make(0.03, 0.03, 0.5, 15, 2, 1)
    assert not at_threshold.noisy and at_threshold.handling == "keep" and at_threshold.keep_fraction == 0.5
    assert at_threshold.prune_epoch == 2
    above = NoiseDecision.make(0.0301, 0.03, 0.5, 15, 2, 1)
    assert above.noisy and above.handling == "exclude" and above.prune_epoch == 3
    assert above.keep_fraction == pytest.approx(31 / 72)
    assert NoiseDecision.from_dict(above.as_dict()) == above


def test_clean_labels_train_exactly_as_without_detection():
    x, y = clean_data()
    plain, plain_model, _ = fit(x, y)
    plain_rng = torch.get_rng_state()
    auto, auto_model, _ = fit(x, y, mislabelled="auto")
    assert torch.equal(torch.get_rng_state(), plain_rng)  # the detector drew no random numbers
    assert auto.noise_decision is not None and not auto.noise_decision.noisy
    assert auto.label_issues.num_flagged == 0 and auto.pruned_after_epoch == plain.pruned_after_epoch == 2
    np.testing.assert_array_equal(auto.kept_indices, plain.kept_indices)
    for name, value in plain_model.state_dict().items():
        assert torch.equal(auto_model.state_dict()[name], value), name
    assert auto.scored_examples == plain.scored_examples == N  # the same single pass


def test_noisy_labels_train_one_more_epoch_then_keep_less_among_the_unflagged():
    x, y, flipped = noisy_data()  # 20 % pairwise noise
    prune, _, weights = fit(x, y, mislabelled="auto")
    decision = prune.noise_decision
    first = reference_issues(weights.at[1], x, y)  # the detector on the model after 2 epochs
    assert decision.noisy and decision.estimate == pytest.approx(first.noise_rate_estimate) and decision.estimate > 0.03
    # E = 8, p = 2, k = 0.5, x = 1: planned 2 + 6 * 0.5 + 1/3 = 5.3333 presentations per example;
    # 3 + 5 k' + 2/3 = 5.3333 -> k' = 1/3; 240 / 3 = 80 kept
    assert decision.keep_fraction == pytest.approx(1 / 3)
    assert prune.pruned_after_epoch == 3 and len(prune.kept_indices) == 80
    second = reference_issues(weights.at[2], x, y)  # flags from the model after 3 epochs
    assert prune.label_issues.flagged.tolist() == second.flagged.tolist()
    assert not second.flagged[prune.kept_indices].any()
    assert prune.scored_examples == 2 * N  # both scoring passes counted
    assert sorted(weights.presented[2]) == list(range(N))  # the extra epoch on all data
    assert sorted(weights.presented[3]) == prune.kept_indices.tolist()
    assert prune.score_table.metadata["mislabelled_auto"]["noisy"] is True
    assert len(np.intersect1d(np.flatnonzero(second.flagged), flipped)) >= 0.8 * len(flipped)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"noise_threshold": 1.5}, r"`noise_threshold` .* a share in \[0, 1\) \(e.g. 0.07\), got 1.5"),
        ({"noise_threshold": "low"}, r"got 'low'"),
        ({"noisy_extra_epochs": -1}, r"`noisy_extra_epochs` .* an integer >= 0 \(e.g. 1\), got -1"),
        ({"noisy_extra_epochs": 1.5}, r"got 1.5"),
    ],
)
def test_bad_settings_are_refused_at_construction(options, message):
    with pytest.raises(ValueError, match=message):
        PruneDuringFit(mislabelled="auto", **options)


def test_settings_of_auto_without_auto_are_refused():
    with pytest.raises(ValueError, match=r"`noise_threshold=0.1` applies only with mislabelled='auto', got 'exclude'"):
        PruneDuringFit(mislabelled="exclude", noise_threshold=0.1)


def test_a_run_too_short_for_the_extra_epoch_excludes_at_after_epochs():
    # E = 4, p = 2, k = 0.5, x = 1: k' = (2 * 0.5 - 1 - 1/3) / 1 < 0 -> no extension: flags of epoch 2, keep 0.5
    x, y, _ = noisy_data()
    prune, _, weights = fit(x, y, max_epochs=4, mislabelled="auto")
    decision = prune.noise_decision
    assert decision.noisy and decision.extra_epochs == 0 and decision.asked_extra_epochs == 1
    assert prune.pruned_after_epoch == 2 and len(prune.kept_indices) == N // 2 and prune.scored_examples == N
    flags = reference_issues(weights.at[1], x, y).flagged
    assert prune.label_issues.flagged.tolist() == flags.tolist() and not flags[prune.kept_indices].any()
    assert "too short to pay for 1 more epoch(s)" in decision.describe()


def test_the_extension_is_shortened_until_it_costs_at_most_half_the_kept_set():
    # E = 6, p = 2, k = 0.5: x = 1 gives k' = (2 - 4/3) / 3 = 2/9 < 0.25 -> none; E = 8: x = 2 gives
    # (3 - 7/3) / 4 = 1/6 < 0.25, x = 1 gives 1/3 -> 1
    assert affordable_extra_epochs(0.5, 6, 2, 1) == 0
    assert affordable_extra_epochs(0.5, 8, 2, 2) == 1
    assert affordable_extra_epochs(0.5, 15, 2, 1) == 1
    assert affordable_extra_epochs(0.5, None, 2, 1) == 0  # no max_epochs (max_steps): the cost is unknown


def test_resume_during_the_extra_epoch_finishes_the_same_way(tmp_path):
    x, y, _ = noisy_data()
    checkpoints = ModelCheckpoint(dirpath=tmp_path, filename="{epoch}", save_top_k=-1, save_on_train_epoch_end=True)
    full, full_model, _ = fit(x, y, callbacks=[checkpoints], mislabelled="auto")
    # saved at the end of epoch 2 (0-based 1): decided noisy, not pruned yet
    saved = torch.load(tmp_path / "epoch=1.ckpt", weights_only=False)
    state = next(v for k, v in saved["callbacks"].items() if "PruneDuringFit" in k)
    assert state["kept_indices"] is None and state["noise_decision"]["noisy"]
    again = ModelCheckpoint(dirpath=tmp_path / "again", filename="{epoch}", save_top_k=-1, save_on_train_epoch_end=True)
    resumed, resumed_model, _ = fit(x, y, callbacks=[again], ckpt_path=tmp_path / "epoch=1.ckpt", mislabelled="auto")
    assert resumed.noise_decision == full.noise_decision and resumed.pruned_after_epoch == 3
    np.testing.assert_array_equal(resumed.kept_indices, full.kept_indices)
    assert resumed.scored_examples == full.scored_examples == 2 * N
    for name, value in full_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[name], value), name


def test_auto_on_a_language_model_prunes_as_without_detection():
    from _modules import TinyLM, token_data

    data = token_data(num_examples=30)  # per-token labels: no example label for the detector to flag
    kept = []
    for mislabelled in (None, "auto"):
        torch.manual_seed(0)
        prune = PruneDuringFit(after_epochs=1, score="loss", keep_fraction=0.5, mislabelled=mislabelled)
        quiet_trainer(max_epochs=2, callbacks=[prune]).fit(TinyLM(), datamodule=PruningDataModule(data, batch_size=8))
        kept.append(prune.kept_indices)
        assert prune.noise_decision is None and prune.label_issues is None
    np.testing.assert_array_equal(kept[1], kept[0])
    with pytest.raises(ValueError, match="a sequence model's labels are per token"):  # explicit: still refused
        quiet_trainer(
            max_epochs=2, callbacks=[PruneDuringFit(after_epochs=1, score="loss", mislabelled="exclude")]
        ).fit(TinyLM(), datamodule=PruningDataModule(data, batch_size=8))
