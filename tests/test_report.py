"""Scaling-curve report: the power-law fit against a numpy reference, a fake sweep directory with
finished and failed jobs, and the ``datadiet-report`` command."""

import csv
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from datadiet.report import build_report, collect_jobs, fit_power_law
from datadiet.report.callback import main as report_main
from datadiet.report.scaling import FAILURE_FILE, format_report


def test_power_law_fit_recovers_an_exact_power_law():
    n = np.array([100, 200, 400, 800, 1600])
    fit = fit_power_law(n, 2.0 * n**-0.5, "hard")
    assert fit.exponent == pytest.approx(-0.5) and fit.prefactor == pytest.approx(2.0)
    assert fit.r_squared == pytest.approx(1.0) and (fit.min_examples, fit.max_examples) == (100, 1600)


def test_power_law_fit_is_least_squares_in_log_space():
    rng = np.random.default_rng(0)
    n = np.geomspace(50, 5000, 7)
    error = 3.0 * n**-0.3 * np.exp(rng.normal(scale=0.1, size=n.size))
    slope, intercept = np.linalg.lstsq(np.stack([np.log(n), np.ones_like(n)], 1), np.log(error), rcond=None)[0]
    fit = fit_power_law(n, error)
    assert fit.exponent == pytest.approx(slope) and fit.prefactor == pytest.approx(np.exp(intercept))


def test_power_law_fit_leaves_out_zero_error_and_needs_two_sizes():
    fit = fit_power_law([10, 20, 40], [0.4, 0.2, 0.0])
    assert fit.num_points == 2 and fit.exponent == pytest.approx(-1.0)
    assert fit_power_law([10, 10], [0.3, 0.2]) is None


def _job(sweep, number, strategy, keep_fraction, test_error=None, failure=None, train_examples=1000):
    directory = sweep / str(number)
    (directory / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"pruning": {"strategy": strategy, "keep_fraction": keep_fraction}}),
                   directory / ".hydra" / "config.yaml")  # fmt: skip
    if test_error is not None:
        summary = {"examples_kept": round(keep_fraction * train_examples), "train_examples": train_examples,
                   "test_error": test_error, "test_accuracy": 1 - test_error, "score": "el2n", "seed": 0}  # fmt: skip
        (directory / "summary.json").write_text(json.dumps(summary))
    if failure is not None:
        (directory / FAILURE_FILE).write_text(json.dumps({"type": "ValueError", "message": failure}))


@pytest.fixture
def fake_sweep(tmp_path):
    sweep = tmp_path / "multirun" / "2026-01-31" / "12-00-00"
    number = 0
    for strategy, exponent in (("hard", -0.6), ("random", -0.4)):
        for keep_fraction in (0.1, 0.3, 1.0):
            _job(sweep, number, strategy, keep_fraction, test_error=5.0 * (keep_fraction * 1000) ** exponent)
            number += 1
    _job(sweep, number, "easy", 0.3, failure="unknown strategy")
    _job(sweep, number + 1, "easy", 0.5)  # never finished, left no trace
    return sweep


def test_report_has_one_point_per_finished_job_and_lists_the_failed_ones(fake_sweep):
    report = build_report(fake_sweep)
    assert len(report.jobs) == 8 and len(report.finished) == 6
    errors = {job.directory.name: job.error for job in report.failed}
    assert errors == {"6": "ValueError: unknown strategy", "7": errors["7"]} and "no summary.json" in errors["7"]

    with open(fake_sweep / "scaling_curve.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["strategy"], int(r["examples_kept"])) for r in rows] == [
        ("hard", 100), ("hard", 300), ("hard", 1000), ("random", 100), ("random", 300), ("random", 1000)
    ]  # fmt: skip
    fits = {fit.strategy: fit.exponent for fit in report.fits}
    assert fits == {"hard": pytest.approx(-0.6), "random": pytest.approx(-0.4)}
    with open(fake_sweep / "scaling_fits.csv") as handle:
        assert {r["strategy"]: float(r["exponent"]) for r in csv.DictReader(handle)} == fits
    assert (fake_sweep / "scaling_curve.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((fake_sweep / "report.json").read_text())
    assert saved["num_finished"] == 6 and len(saved["failed_jobs"]) == 2
    text = format_report(report)
    assert "FAILED 6" in text and "FAILED 7" in text and "hard" in text


def test_seeds_of_one_size_are_averaged(tmp_path):
    for number, error in enumerate((0.2, 0.4)):
        _job(tmp_path, number, "random", 0.5, test_error=error)
    _job(tmp_path, 2, "random", 1.0, test_error=0.1)
    report = build_report(tmp_path)
    (fit,) = report.fits
    assert fit.num_points == 2
    assert fit.exponent == pytest.approx(np.log(0.1 / 0.3) / np.log(1000 / 500))


def test_report_command_rebuilds_the_files_and_fails_on_failed_jobs(fake_sweep, capsys):
    assert report_main([str(fake_sweep), "--no-wandb"]) == 1
    output = capsys.readouterr().out
    assert "6 of 8 jobs finished" in output and "FAILED" in output
    assert (fake_sweep / "scaling_curve.csv").exists()


def test_report_command_rejects_a_folder_without_jobs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path)])
    assert exit_info.value.code == 2 and "no Hydra jobs" in capsys.readouterr().err


def test_collect_reads_strategy_from_the_job_config(fake_sweep):
    jobs = {job.directory.name: job for job in collect_jobs(fake_sweep)}
    assert jobs["2"].strategy == "hard" and jobs["2"].keep_fraction == 1.0 and jobs["2"].finished


def _configured_job(directory, keep_fraction, strategy="hard", seed=0, model="mlp", probe_epochs=5, test_error=0.2):
    (directory / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "model": {"name": model},
              "probe": {"epochs": probe_epochs, "scores": ["el2n"], "score_options": {}},
              "pruning": {"strategy": strategy, "keep_fraction": keep_fraction, "seed": "${seed}"}}  # fmt: skip
    OmegaConf.save(OmegaConf.create(config), directory / ".hydra" / "config.yaml")
    summary = {"examples_kept": round(keep_fraction * 1000), "train_examples": 1000, "test_error": test_error,
               "score": "el2n", "seed": seed}  # fmt: skip
    (directory / "summary.json").write_text(json.dumps(summary))


def test_a_folder_of_two_experiments_is_refused_without_writing_a_curve(tmp_path, capsys):
    from datadiet.report.scaling import MixedSweepError

    for number, keep_fraction in enumerate((0.1, 0.5)):  # sweep 1: mlp, probe 5 epochs
        _configured_job(tmp_path / "12-00-00" / str(number), keep_fraction, model="mlp")
    for number, keep_fraction in enumerate((0.1, 0.5)):  # sweep 2: resnet18, probe 10 epochs
        _configured_job(tmp_path / "13-00-00" / str(number), keep_fraction, model="resnet18", probe_epochs=10)
    with pytest.raises(MixedSweepError, match=r'model.name: "mlp" \(2 jobs\), "resnet18" \(2 jobs\); probe.epochs: 5'):
        build_report(tmp_path)
    assert not (tmp_path / "scaling_curve.csv").exists() and not (tmp_path / "report.json").exists()
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path), "--no-wandb"])
    assert exit_info.value.code == 2 and "not one sweep" in capsys.readouterr().err


def test_jobs_differing_only_in_keep_fraction_strategy_and_seed_are_one_sweep(tmp_path):
    number = 0
    for strategy in ("hard", "random"):
        for seed in (0, 1):
            for keep_fraction in (0.1, 0.5):
                _configured_job(tmp_path / str(number), keep_fraction, strategy=strategy, seed=seed)
                number += 1
    report = build_report(tmp_path)
    assert len(report.finished) == 8 and {fit.strategy for fit in report.fits} == {"hard", "random"}


def test_the_multirun_callback_warns_and_writes_no_curve_for_a_mixed_sweep(tmp_path, caplog):
    from datadiet.report.callback import ScalingCurveCallback

    _configured_job(tmp_path / "0", 0.1, model="mlp")
    _configured_job(tmp_path / "1", 0.5, model="resnet18")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    ScalingCurveCallback().on_multirun_end(config)  # every job finished: no error, but no curve
    assert "no scaling curve for this multirun" in caplog.text and "model.name" in caplog.text
    assert not (tmp_path / "scaling_curve.csv").exists()
