"""The regime guard of mislabelled="auto": where static selection cannot pay (a small class, few epochs left, a
noise estimate past the detector), auto keeps all data and says why; elsewhere it changes nothing."""

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from _modules import LitClassifier, quiet_trainer
from datadiet import PruneDuringFit, PruningDataModule
from datadiet.callbacks.noisy_labels import (
    DEFAULT_MISLABELLED,
    GUARD_MAX_NOISE_ESTIMATE,
    GUARD_MAX_UNRESOLVED_NOISE,
    GUARD_MIN_EPOCHS_LEFT,
    GUARD_MIN_EXAMPLES_PER_CLASS,
    NoiseDecision,
    static_pruning_guard,
)


def test_the_thresholds_worked_by_hand():
    assert (GUARD_MIN_EXAMPLES_PER_CLASS, GUARD_MIN_EPOCHS_LEFT, GUARD_MAX_NOISE_ESTIMATE) == (1000, 3, 0.3)
    assert GUARD_MAX_UNRESOLVED_NOISE == 0.1
    big = np.full(10, 5400)  # Fashion-MNIST's 54,000 training images
    assert static_pruning_guard(big, 10, 2, 0.2) is None  # 8 epochs left, 20 % estimated noise: may prune
    digits = np.array([130] * 9 + [124])  # 1,294 training digits
    assert "1,294 training examples (124 in the smallest class, under 1,000) are too few" in static_pruning_guard(
        digits, 20, 2, 0.3
    )
    assert "2 epoch(s) left after scoring at epoch 3 of 5" in static_pruning_guard(big, 5, 3, 0.0)
    assert static_pruning_guard(big, 6, 3, 0.0) is None  # 3 left: enough
    assert static_pruning_guard(None, None, 2, 0.3) is None  # unknown sizes are not judged; 30 % is not over
    assert "noise estimate of 35% is too many" in static_pruning_guard(big, 10, 2, 0.35)  # MNIST-1D at 40 %


def test_the_detector_is_checked_against_confident_learning():
    big = np.full(10, 5400)
    # symmetric noise: the two estimates agree (Fashion-MNIST at 20 %: 19.7 % and 20.9 %), static pruning may go on
    assert static_pruning_guard(big, 10, 2, 0.197, 0.209) is None
    assert static_pruning_guard(big, 10, 2, 0.02, 0.12) is None  # 10 points apart: not more than 10
    # 30 % of every class moved to the next: the detector sees 4 %, confident learning 29 %
    why = static_pruning_guard(big, 10, 2, 0.043, 0.286)
    assert why.startswith("confident learning estimates 29% of the labels wrong where the detector flags 4%")
    assert static_pruning_guard(big, 10, 2, 0.043, None) is None  # unknown: not judged
    decision = NoiseDecision.make(0.043, 0.07, 0.5, 10, 2, 1, big, confident_learning_estimate=0.286)
    assert decision.keep_fraction == 1.0 and decision.handling == "keep" and not decision.noisy
    assert decision.confident_learning_estimate == 0.286
    assert NoiseDecision.from_dict(decision.as_dict()) == decision


def test_a_guarded_decision_keeps_all_and_excludes_nothing():
    decision = NoiseDecision.make(0.3, 0.07, 0.5, 20, 2, 1, np.array([130] * 10))
    assert decision.keep_fraction == 1.0 and decision.extra_epochs == 0 and decision.handling == "keep"
    assert decision.describe().startswith("kept all: 1,300 training examples")
    unguarded = NoiseDecision.make(0.3, 0.07, 0.5, 15, 2, 1, np.full(10, 4500))
    assert unguarded.guard is None and unguarded.handling == "exclude" and unguarded.extra_epochs == 1
    assert NoiseDecision.from_dict(decision.as_dict()) == decision


def test_the_default_is_auto_and_keeps_a_small_set_whole(caplog):
    assert PruneDuringFit().mislabelled == DEFAULT_MISLABELLED == "auto"
    rng = np.random.default_rng(0)
    y = torch.tensor(rng.integers(0, 3, 120))
    x = torch.tensor(rng.normal(size=(120, 4)), dtype=torch.float32) + nn.functional.one_hot(y, 4).float() * 2
    torch.manual_seed(0)
    prune = PruneDuringFit(after_epochs=1, keep_fraction=0.5)
    dm = PruningDataModule(TensorDataset(x, y), batch_size=32)
    with caplog.at_level("INFO"):
        quiet_trainer(max_epochs=5, callbacks=[prune]).fit(LitClassifier(nn.Linear(4, 3), 0.1), datamodule=dm)
    assert len(prune.kept_indices) == 120 and prune.noise_decision.guard is not None
    assert "kept all: 120 training examples" in caplog.text and "too few for static pruning to pay" in caplog.text


def test_pairwise_noise_the_detector_cannot_resolve_keeps_all_and_clean_labels_prune(caplog):
    # 10 well-separated classes, 1,200 each; 30 % of every class labelled as the next one. The model learns to give
    # the next class ~0.3 (> chance 0.1), so below_chance flags few; confident learning sees the moved share.
    rng = np.random.default_rng(0)
    k, n = 10, 12000
    true = rng.integers(0, k, n)
    x = torch.tensor(rng.normal(size=(n, k)), dtype=torch.float32) + nn.functional.one_hot(torch.tensor(true), k) * 3.0
    moved = rng.random(n) < 0.3
    given = np.where(moved, (true + 1) % k, true)
    kept = {}
    for name, labels in (("pairwise", given), ("clean", true)):
        torch.manual_seed(0)
        prune = PruneDuringFit(after_epochs=2, keep_fraction=0.5)
        dm = PruningDataModule(TensorDataset(x, torch.tensor(labels)), batch_size=256)
        with caplog.at_level("INFO"):
            quiet_trainer(max_epochs=5, callbacks=[prune]).fit(LitClassifier(nn.Linear(k, k), 0.5), datamodule=dm)
        decision = prune.noise_decision
        kept[name] = len(prune.kept_indices)
        if name == "pairwise":
            assert decision.confident_learning_estimate - decision.estimate > GUARD_MAX_UNRESOLVED_NOISE
            assert decision.guard.startswith("confident learning estimates") and decision.handling == "keep"
            assert "kept all: confident learning estimates" in caplog.text
        else:
            assert decision.guard is None and not decision.noisy
    assert kept == {"pairwise": n, "clean": n // 2}


def test_auto_with_a_score_free_strategy_detects_nothing_as_in_the_app():
    assert PruneDuringFit(strategy="random").mislabelled is None
    assert PruneDuringFit(strategy="random", mislabelled="exclude").mislabelled == "exclude"


def test_the_app_says_kept_all_in_the_summary(tmp_path, capsys):
    from hydra import compose, initialize_config_dir

    from _app_overrides import SMALL
    from datadiet.app import config_dir, run

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[*SMALL, f"paths.output_dir={tmp_path}", "pruning.mislabelled=auto"])
    summary = run(cfg)
    assert summary["mislabelled_auto"]["guard"].startswith(f"{summary['train_examples']:,} training examples")
    assert summary["examples_kept"] == summary["train_examples"]
    line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith("likely mislabelled"))
    assert "kept all:" in line and "too few for static pruning to pay" in line
