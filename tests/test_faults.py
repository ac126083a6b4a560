"""Every file datadiet reads from a run directory or a cache, damaged: it is made again (moved to ``superseded/``
with a warning naming it) or refused with an error naming it and what to do.

The app faults start from one finished small run (``_app_overrides.SMALL``), copied per fault; the rerun must
end like the undamaged run (same kept subset) and leave the damaged file in ``superseded/``.
"""

import logging
import shutil

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from _app_overrides import SMALL
from datadiet import ScoreTable
from datadiet._io import UnreadableFileError
from datadiet.app import config_dir, run
from datadiet.app.rundir import SUPERSEDED


def _compose(run_dir, *overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("config", overrides=[*SMALL, f"paths.output_dir={run_dir}", "pruning.strategy=hard", *overrides])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run, its probe cached in ``probe_cache/`` of the run directory."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    run(_compose(run_dir))
    return run_dir


def _kept(run_dir):
    return np.load(run_dir / "kept_indices.npz")["kept_indices"]


def _truncate(path):
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])


def _moved(run_dir):
    """Files moved to ``superseded/<time>/``, by their path in the run directory."""
    superseded = run_dir / SUPERSEDED
    return sorted("/".join(p.relative_to(superseded).parts[1:]) for p in superseded.rglob("*") if p.is_file())


def _rerun(finished, tmp_path, damage, caplog):
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    damage(run_dir)
    with caplog.at_level(logging.WARNING):
        summary = run(_compose(run_dir))
    np.testing.assert_array_equal(_kept(run_dir), _kept(finished))  # ends like the undamaged run
    return run_dir, summary


@pytest.mark.slow
def test_a_truncated_kept_subset_is_moved_aside_and_selected_again(finished, tmp_path, caplog):
    run_dir, summary = _rerun(finished, tmp_path, lambda d: _truncate(d / "kept_indices.npz"), caplog)
    assert "kept subset" not in summary["resumed"]
    assert _moved(run_dir) == ["kept_indices.json", "kept_indices.npz"]
    assert "kept_indices.npz cannot be read (truncated or corrupt" in caplog.text


@pytest.mark.slow
def test_a_garbage_kept_subset_provenance_is_moved_aside_and_selected_again(finished, tmp_path, caplog):
    run_dir, summary = _rerun(finished, tmp_path, lambda d: (d / "kept_indices.json").write_text("{not json"), caplog)
    assert "kept subset" not in summary["resumed"]
    assert _moved(run_dir) == ["kept_indices.json", "kept_indices.npz"]
    assert "kept_indices.json cannot be read (not valid JSON" in caplog.text


@pytest.mark.slow
def test_garbage_training_settings_move_the_training_aside_and_train_again(finished, tmp_path, caplog):
    run_dir, summary = _rerun(finished, tmp_path, lambda d: (d / "train" / "settings.json").write_text("[1, 2"), caplog)
    assert "training" not in summary["resumed"] and summary["train_examples_seen"] > 0
    assert {"train/settings.json", "train/checkpoints/last.ckpt", "summary.json"} <= set(_moved(run_dir))
    assert "train/settings.json cannot be read (not valid JSON" in caplog.text


@pytest.mark.slow
def test_a_truncated_training_checkpoint_is_moved_aside_and_trained_again(finished, tmp_path, caplog):
    run_dir, summary = _rerun(
        finished, tmp_path, lambda d: _truncate(d / "train" / "checkpoints" / "last.ckpt"), caplog
    )
    assert "training" not in summary["resumed"]
    assert _moved(run_dir) == ["train/checkpoints/last.ckpt"]
    assert "checkpoints/last.ckpt cannot be read (truncated or not a checkpoint" in caplog.text


@pytest.mark.slow
def test_an_unfinished_probe_with_garbage_settings_is_moved_aside_and_probed_again(finished, tmp_path, caplog):
    def unfinished_probe(run_dir):  # killed during the probe: a checkpoint, no scores, nothing cached
        for path in [run_dir / "scores.npz", run_dir / "scores.json", *(run_dir / "probe_cache").glob("*.*")]:
            path.unlink()
        (run_dir / "probe" / "settings.json").write_text("not json")

    run_dir, summary = _rerun(finished, tmp_path, unfinished_probe, caplog)
    assert "probe" not in summary["resumed"] and summary["probe_examples_seen"] > 0
    assert "probe/settings.json" in _moved(run_dir)
    assert "probe/settings.json cannot be read (not valid JSON" in caplog.text


@pytest.mark.slow
def test_truncated_scores_without_a_cache_entry_are_moved_aside_and_probed_again(finished, tmp_path, caplog):
    def truncated_scores(run_dir):
        for path in (run_dir / "probe_cache").glob("*.*"):
            path.unlink()
        _truncate(run_dir / "scores.npz")

    run_dir, summary = _rerun(finished, tmp_path, truncated_scores, caplog)
    assert "scores.npz" in _moved(run_dir)
    assert "scores.npz cannot be read (truncated or corrupt" in caplog.text
    ScoreTable.load(run_dir / "scores.npz")  # made again, whole


@pytest.mark.slow
def test_a_corrupt_cache_entry_is_replaced_and_later_jobs_of_the_sweep_reuse_it(finished, tmp_path, caplog):
    cache = tmp_path / "shared_cache"
    shutil.copytree(finished / "probe_cache", cache)
    [entry] = cache.glob("*.npz")
    _truncate(entry)
    with caplog.at_level(logging.WARNING):
        first = run(_compose(tmp_path / "job0", f"paths.cache_dir={cache}"))
    assert first["probe_cache"] == "miss"
    assert f"probe cache entry {entry} cannot be read" in caplog.text
    assert (cache / SUPERSEDED).is_dir()
    assert ScoreTable.load(entry).metadata["probe_fingerprint"] == entry.stem  # replaced, whole
    later = run(_compose(tmp_path / "job1", f"paths.cache_dir={cache}"))
    assert later["probe_cache"] == "hit"
    np.testing.assert_array_equal(_kept(tmp_path / "job1"), _kept(finished))


def test_a_cache_folder_that_is_a_file_is_refused_naming_the_variable(tmp_path, monkeypatch):
    from datadiet.app.cache import ProbeCache
    from datadiet.data.sources.mnist1d import default_cache_dir, load_mnist1d

    a_file = tmp_path / "cache"
    a_file.write_text("")
    for pointed in (a_file, a_file / "below"):
        monkeypatch.setenv("DATADIET_CACHE", str(pointed))
        with pytest.raises(NotADirectoryError, match=f"DATADIET_CACHE={pointed}: {a_file} is a file, not a folder"):
            default_cache_dir()
        with pytest.raises(NotADirectoryError, match="DATADIET_CACHE="):
            load_mnist1d(100)
    with pytest.raises(NotADirectoryError, match=rf"paths.cache_dir={a_file}` is a file"):
        ProbeCache(a_file)


def test_a_truncated_data_cache_is_generated_again(tmp_path, caplog):
    from datadiet.data.sources.mnist1d import load_mnist1d

    first = load_mnist1d(100, cache_dir=str(tmp_path))
    [cached] = tmp_path.glob("mnist1d_*.npz")
    _truncate(cached)
    with caplog.at_level(logging.WARNING):
        again = load_mnist1d(100, cache_dir=str(tmp_path))
    assert f"cached MNIST-1D {cached} cannot be read" in caplog.text
    np.testing.assert_array_equal(again["x"], first["x"])
    np.testing.assert_array_equal(load_mnist1d(100, cache_dir=str(tmp_path))["y"], first["y"])  # replaced, whole


def test_a_truncated_irreducible_loss_cache_is_computed_again(tmp_path):
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from _modules import LitClassifier
    from datadiet.scores.rho_loss import irreducible_losses

    data = TensorDataset(torch.randn(40, 3), torch.randint(0, 2, (40,)))
    arguments = dict(model_factory=lambda: LitClassifier(nn.Linear(3, 2)), batch_size=8,
                     trainer_kwargs={"max_epochs": 1, "enable_progress_bar": False}, cache_path=tmp_path / "il.npz")  # fmt: skip
    first = irreducible_losses(data, **arguments)
    _truncate(tmp_path / "il.npz")
    with pytest.warns(UserWarning, match="il.npz cannot be read"):
        again = irreducible_losses(data, **arguments)
    np.testing.assert_allclose(again, first)
    np.testing.assert_array_equal(np.load(tmp_path / "il.npz")["irreducible_loss"], again)


def test_a_garbage_reference_record_is_moved_aside(tmp_path, caplog):
    from types import SimpleNamespace

    from datadiet.app.reference import load_reference, save_reference
    from datadiet.app.user_code import TestMetric

    plan = SimpleNamespace(config={"paths": {"cache_dir": str(tmp_path)}}, max_epochs=3, test_metric=TestMetric())
    save_reference(
        plan,
        "key",
        {
            "test_metric": "test/acc",
            "test_metric_value": 0.5,
            "test_accuracy": 0.5,
            "total_flops": 1.0,
            "output_dir": "x",
        },
    )
    assert load_reference(plan, "key")["test_accuracy"] == 0.5
    (tmp_path / "references" / "key.json").write_text("{")
    with caplog.at_level(logging.WARNING):
        assert load_reference(plan, "key") is None
    assert "references/key.json cannot be read (not valid JSON" in caplog.text
    assert not (tmp_path / "references" / "key.json").exists() and (tmp_path / SUPERSEDED).is_dir()


def test_a_sweep_job_with_a_garbage_summary_is_reported_failed_with_the_reason(tmp_path):
    from datadiet.report.scaling import collect_jobs

    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("pruning:\n  strategy: hard\n  keep_fraction: 0.5\n")
    (job / "summary.json").write_text('{"test_accuracy": 0.9')
    [collected] = collect_jobs(tmp_path)
    assert collected.summary is None
    assert "summary.json: not valid JSON" in collected.error and "rerun that job" in collected.error


@pytest.mark.parametrize("damage", ["truncated", "garbage_json"])
def test_a_foundation_subset_given_by_the_user_is_refused_naming_it(tmp_path, damage):
    from datadiet.subset import export_foundation_subset, load_foundation_subset

    path = export_foundation_subset(tmp_path / "subset.npz", np.arange(5))
    if damage == "truncated":
        _truncate(path)
    else:
        path.with_suffix(".json").write_text("{")
    with pytest.raises(UnreadableFileError, match=r"cannot read .*subset\.(npz|json): .*pruning.subset_path"):
        load_foundation_subset(path, remedy="pass `pruning.subset_path` a subset file datadiet wrote")
