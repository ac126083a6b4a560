"""DDP (2 CPU processes, gloo) gives exactly the 1-process statistics, and every rank trains on one subset.

The DDP run is a subprocess running ``ddp_scripts/probe_equivalence.py`` (Lightning's launcher
re-executes ``sys.argv`` for rank 1, which must not be pytest); the 1-process reference runs the same
functions in this process.
"""

import numpy as np
import pytest
import torch

from _equivalence import load_script, one_and_two_processes

probe_equivalence = load_script("probe_equivalence")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return one_and_two_processes(probe_equivalence, tmp_path_factory.mktemp("ddp"))


def _statistics(arrays: dict, scenario: str) -> dict:
    return {key: value for key, value in arrays.items() if key.startswith(f"{scenario}/")}


@pytest.mark.parametrize("scenario", list(probe_equivalence.SCENARIOS))
def test_every_statistic_equals_the_one_process_value(runs, scenario):
    single, rank0, rank1 = runs
    expected = _statistics(single, scenario)
    assert len(expected) >= 2 * len(single["scores"])  # score + raw for every score
    for key, value in expected.items():
        # identical tables on both ranks (the merge is an all_reduce), equal to 1 process to float64 tolerance
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)
        np.testing.assert_allclose(rank0[key], value, rtol=1e-10, atol=1e-12, err_msg=key)
    assert int(rank0[f"{scenario}/epochs_recorded"]) == probe_equivalence.SCENARIOS[scenario][2]


def test_trained_scenario_really_moves(runs):
    single, _, _ = runs
    raw = single["trained/raw/forgetting"]
    assert np.isfinite(raw).all() and (raw > 0).any(), "some examples must be forgotten for the test to mean much"
    assert not np.allclose(single["trained/weights"], single["frozen/weights"][: len(single["trained/weights"])])


def test_padding_never_counts_twice(runs):
    _, rank0, _ = runs
    # N = 51 on 2 ranks: the sampler repeats one example each epoch, yet it counts one presentation per epoch
    if "correctness" in rank0["scores"]:
        assert np.all(rank0["frozen/raw/correctness"] * 2 % 1 == 0)  # a fraction of 2 epochs, never 3 halves


def test_every_rank_trains_on_rank_zeros_subset_once_per_epoch(runs):
    _, rank0, rank1 = runs
    kept = rank0["pruned/kept_rank0_rule"]
    assert len(kept) % 2 == 1  # odd: the training sampler pads one example
    # rank 1 selected a different subset on purpose; the data module adopted rank 0's at `setup`
    assert not np.array_equal(rank1["pruned/kept_before_fit"], kept)
    np.testing.assert_array_equal(rank0["pruned/kept_after_fit"], kept)
    np.testing.assert_array_equal(rank1["pruned/kept_after_fit"], kept)
    epochs = sorted(key for key in rank0 if key.startswith("pruned/seen_epoch"))
    assert len(epochs) == 2
    for key in epochs:
        seen = np.concatenate([rank0[key], rank1[key]])
        assert set(seen.tolist()) == set(kept.tolist())
        assert len(seen) == len(kept) + 1  # each kept example once, plus the one padding duplicate


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_cuda_statistics_match_cpu_and_add_no_sync_per_step(precision):
    import lightning.pytorch as pl

    from datadiet import DifficultyCallback, PruningDataModule
    from datadiet.models import Classifier

    class NoSyncDifficulty(DifficultyCallback):
        """Fails on any host–device synchronisation inside the per-step hooks."""

        def on_train_batch_start(self, *args, **kwargs):
            torch.cuda.set_sync_debug_mode("error")
            try:
                super().on_train_batch_start(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")

        def on_train_batch_end(self, *args, **kwargs):
            torch.cuda.set_sync_debug_mode("error")
            try:
                super().on_train_batch_end(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")

    scores = probe_equivalence.all_scores()
    data = probe_equivalence.make_data(51)
    data = torch.utils.data.TensorDataset(data.tensors[0].float(), data.tensors[1])
    tables = {}
    for accelerator, prec in (("cpu", "32-true"), ("cuda", precision)):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
        model = Classifier(net, input_shape=[6], num_classes=3, optimizer="sgd", lr=0.0)
        callback = (NoSyncDifficulty if accelerator == "cuda" else DifficultyCallback)(scores=scores)
        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=1,
            precision=prec,
            max_epochs=2,
            callbacks=[callback],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(model, datamodule=PruningDataModule(data, batch_size=8))
        if accelerator == "cuda":
            for score in callback.scores.values():  # statistics stay on the GPU, floating state in float32
                for name in score._state_names:
                    state = getattr(score, name)
                    assert state.device.type == "cuda"
                    assert not state.is_floating_point() or state.dtype == torch.float32
        tables[accelerator] = callback.score_table
    tolerance = 1e-5 if precision == "32-true" else 5e-2
    for name in tables["cpu"].names:
        if name in ("forgetting", "correctness") and precision != "32-true":
            continue  # argmax can flip on near ties under bf16
        np.testing.assert_allclose(
            tables["cuda"][name], tables["cpu"][name], rtol=tolerance, atol=tolerance, err_msg=name
        )


def test_in_run_pruning_decides_identically_on_every_rank(runs):
    single, rank0, rank1 = runs
    np.testing.assert_allclose(rank0["in_run/el2n"], single["in_run/el2n"], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(rank0["in_run/kept"], single["in_run/kept"])
    np.testing.assert_array_equal(rank1["in_run/kept"], single["in_run/kept"])
    assert len(single["in_run/kept"]) == 21
    # the scoring pass: 42 examples, padded to 2 × 21 on 2 ranks; the third epoch sees only the kept subset
    assert int(single["in_run/scored_examples"]) == 42 and int(rank0["in_run/scored_examples"]) == 42
    seen = np.concatenate([rank0["in_run/seen_epoch2"], rank1["in_run/seen_epoch2"]])
    assert set(seen.tolist()) == set(single["in_run/kept"].tolist())
    assert sorted(single["in_run/seen_epoch2"].tolist()) == sorted(single["in_run/kept"].tolist())


def test_mislabelled_auto_decides_identically_on_every_rank(runs):
    single, rank0, rank1 = runs
    for rank in (rank0, rank1):
        np.testing.assert_array_equal(rank["in_run_auto/kept"], single["in_run_auto/kept"])
        np.testing.assert_array_equal(rank["in_run_auto/flagged"], single["in_run_auto/flagged"])
        np.testing.assert_allclose(rank["in_run_auto/decision"], single["in_run_auto/decision"], rtol=1e-12)
    estimate, keep_fraction, pruned_after, scored = single["in_run_auto/decision"]
    # noisy (any flag): one more epoch, two scoring passes of 42, keep 7/24 of 42 = 12.25 -> 12
    assert estimate > 0 and keep_fraction == pytest.approx(7 / 24) and pruned_after == 3 and scored == 84
    assert len(single["in_run_auto/kept"]) == 12 and not single["in_run_auto/flagged"][single["in_run_auto/kept"]].any()
