"""A resumed fit continues what its checkpoint decided only with the arguments that decided it (refused otherwise,
naming the argument); `fast_dev_run` smoke runs go through; the pruning log says what was really trained on."""

import logging

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import TensorDataset

from _modules import LitClassifier, quiet_trainer
from _recorder import BatchRecorder
from datadiet import DynamicPruning, PruneDuringFit, PruningDataModule

N, D, K = 60, 5, 3
FIRST = {"after_epochs": 2, "keep_fraction": 0.5, "seed": 1, "mislabelled": None}  # plain selection


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, D)).astype(np.float32)
    return TensorDataset(torch.tensor(x), torch.tensor(x[:, :K].argmax(axis=1)))


def fit(run_dir, callbacks, ckpt_path=None, max_epochs=4):
    torch.manual_seed(0)
    dm = PruningDataModule(data(), batch_size=16)
    checkpoint = ModelCheckpoint(dirpath=run_dir, filename="{epoch}", save_top_k=-1)
    trainer = quiet_trainer(max_epochs=max_epochs, callbacks=[*callbacks, checkpoint], enable_checkpointing=True)
    trainer.fit(LitClassifier(nn.Linear(D, K), lr=0.5), datamodule=dm, ckpt_path=ckpt_path)
    return dm


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """Pruned to half after 2 of 4 epochs; checkpoints after each epoch (epoch=1.ckpt: just pruned)."""
    run_dir = tmp_path_factory.mktemp("first")
    prune = PruneDuringFit(**FIRST)
    fit(run_dir, [prune])
    return run_dir, prune


@pytest.mark.parametrize(
    "changed, was, now",
    [
        ({"keep_fraction": 0.3}, "0.5", "0.3"),
        ({"after_epochs": 1}, "2", "1"),
        ({"score": "margin"}, "'el2n'", "'margin'"),
        ({"strategy": "easy"}, "'hard'", "'easy'"),
        ({"class_balanced": True}, "False", "True"),
        ({"seed": 2}, "1", "2"),
    ],
)
def test_a_resume_after_pruning_with_other_arguments_is_refused(first_run, tmp_path, changed, was, now):
    run_dir, _ = first_run
    (name,) = changed
    resumed = PruneDuringFit(**{**FIRST, **changed})
    with pytest.raises(
        ValueError,
        match=rf"`{name}` was {was} in the checkpoint, {now} now.*pruned to 30 examples"
        r".*fresh fit",
    ):
        fit(tmp_path, [resumed], ckpt_path=run_dir / "epoch=1.ckpt")
    assert not resumed.pruned


def test_the_bad_case_without_the_callbacks_state_is_refused_not_rescored(first_run, tmp_path):
    # the data module comes back pruned; scoring now would rank the 30 dropped (never scored) examples hardest
    run_dir, _ = first_run
    checkpoint = torch.load(run_dir / "epoch=1.ckpt", weights_only=False)
    checkpoint["callbacks"] = {k: v for k, v in checkpoint["callbacks"].items() if not k.startswith("PruneDuringFit")}
    torch.save(checkpoint, tmp_path / "stripped.ckpt")
    with pytest.raises(ValueError, match="pruned to 30 of 60 examples, but it holds no PruneDuringFit state"):
        fit(tmp_path, [PruneDuringFit(**{**FIRST, "keep_fraction": 0.3})], ckpt_path=tmp_path / "stripped.ckpt")


def test_an_older_checkpoint_is_checked_by_the_arguments_in_its_key(first_run, tmp_path):
    run_dir, _ = first_run
    checkpoint = torch.load(run_dir / "epoch=1.ckpt", weights_only=False)
    for state in checkpoint["callbacks"].values():
        state.pop("arguments", None)
    torch.save(checkpoint, tmp_path / "older.ckpt")
    with pytest.raises(ValueError, match="`keep_fraction` was 0.5 in the checkpoint, 0.3 now"):
        fit(tmp_path, [PruneDuringFit(**{**FIRST, "keep_fraction": 0.3})], ckpt_path=tmp_path / "older.ckpt")


def test_before_pruning_a_new_keep_fraction_is_honoured_exactly(first_run, tmp_path):
    run_dir, _ = first_run
    fresh = PruneDuringFit(**{**FIRST, "keep_fraction": 0.3})
    fit(tmp_path / "fresh", [fresh])
    resumed = PruneDuringFit(**{**FIRST, "keep_fraction": 0.3})
    fit(tmp_path / "resumed", [resumed], ckpt_path=run_dir / "epoch=0.ckpt")  # one epoch in: nothing decided
    assert len(resumed.kept_indices) == 18
    np.testing.assert_array_equal(resumed.kept_indices, fresh.kept_indices)


def test_dynamic_pruning_resumed_with_another_prune_ratio_is_refused(tmp_path):
    fit(tmp_path, [DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0)], max_epochs=2)
    with pytest.raises(ValueError, match="`prune_ratio` was 0.5 in the checkpoint, 0.3 now"):
        fit(tmp_path, [DynamicPruning(prune_ratio=0.3, anneal_fraction=0.0)], ckpt_path=tmp_path / "epoch=0.ckpt")
    with pytest.raises(ValueError, match="`seed` was 0 in the checkpoint, 4 now"):
        fit(
            tmp_path,
            [DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0, seed=4)],
            ckpt_path=tmp_path / "epoch=0.ckpt",
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: PruneDuringFit(after_epochs=2),
        lambda: DynamicPruning(prune_ratio=0.5),
        lambda: PruneDuringFit(after_epochs=1, mislabelled="auto"),
    ],
)
def test_fast_dev_run_goes_through_one_batch(make, caplog):
    callback, record = make(), BatchRecorder()
    dm = PruningDataModule(data(), batch_size=16)
    with caplog.at_level(logging.INFO):
        trainer = quiet_trainer(fast_dev_run=True, callbacks=[record, callback])
        trainer.fit(LitClassifier(nn.Linear(D, K)), datamodule=dm)
    assert [len(batch) for batch in record.batches[0]] == [16]
    said = [r.getMessage() for r in caplog.records if "fast_dev_run` trains 1 batch" in r.getMessage()]
    if isinstance(callback, PruneDuringFit):
        assert not callback.pruned and len(said) == 1 and "pruning is skipped" in said[0]
        assert dm.kept_indices is None


def test_with_dynamic_pruning_before_the_prune_the_log_says_what_was_trained_on(caplog):
    record = BatchRecorder()
    prune = PruneDuringFit(after_epochs=2, keep_fraction=0.5, mislabelled=None)
    dynamic = DynamicPruning(prune_ratio=0.5, anneal_fraction=0.0)
    dm = PruningDataModule(data(), batch_size=16)
    with caplog.at_level(logging.INFO):
        quiet_trainer(max_epochs=3, callbacks=[record, prune, dynamic]).fit(
            LitClassifier(nn.Linear(D, K), lr=0.5), datamodule=dm
        )
    presented = len(record.presented[0]) + len(record.presented[1])
    assert len(record.presented[0]) == N and len(record.presented[1]) < N  # epoch 1 was pruned dynamically
    [message] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("PruneDuringFit: after")]
    assert "on all data," not in message
    assert f"less what dynamic pruning skipped ({presented} presentations of {N} examples over 2 epoch(s)" in message


def test_difficulty_callback_resumed_with_other_scores_is_refused(tmp_path):
    from datadiet import DifficultyCallback

    fit(tmp_path, [DifficultyCallback(scores=("el2n", "forgetting"))], max_epochs=2)
    refused = r"`scores` was \('el2n', 'forgetting'\) in the checkpoint, \('forgetting',\) now"
    with pytest.raises(ValueError, match=refused):
        fit(tmp_path, [DifficultyCallback(scores=("forgetting",))], ckpt_path=tmp_path / "epoch=0.ckpt")
