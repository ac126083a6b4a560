#!/usr/bin/env bash
# The paper's figure for your own data: test error against examples kept, one line per strategy.
#
# One Hydra multirun over keep fractions × strategies. The probe runs once (its scores are cached by
# fingerprint in <sweep dir>/probe_cache and reused by every job, also by jobs running in parallel);
# when the sweep ends, <sweep dir> holds scaling_curve.png, scaling_curve.csv, scaling_fits.csv
# (a power-law exponent per strategy) and report.json (with any failed job), and W&B has the runs in
# one group plus a "report" run with the curve as a table and line plot.
#
# This is the recipe behind docs/figures/scaling_mnist1d.png (about 8 minutes on 2 CPU cores).
set -euo pipefail
cd "$(dirname "$0")/.."

.venv/bin/datadiet -m \
  data=mnist1d data.num_samples=5000 data.batch_size=64 \
  model=cnn1d probe.mode=separate model@probe.model=mlp probe.epochs=5 max_epochs=60 \
  pruning.score=el2n \
  pruning.keep_fraction=0.1,0.2,0.4,0.6,0.8,1.0 \
  pruning.strategy=hard,easy,random \
  trainer.enable_progress_bar=false \
  hydra/launcher=joblib hydra.launcher.n_jobs=2 \
  hydra.sweep.dir=multirun/scaling_mnist1d "$@"

# Variations:
#   more seeds per point (averaged, with error bars):   seed=0,1,2
#   on a GPU:                                           trainer=gpu
#   on a SLURM cluster (the sweep dir must be shared):  hydra/launcher=submitit_slurm hydra.launcher.partition=<p> \
#                                                        hydra.launcher.gpus_per_node=1 trainer=gpu
#   CIFAR-10, ResNet-18:                                 data=cifar10 model=resnet18 model@probe.model=resnet18 \
#                                                        trainer=gpu probe.epochs=20 max_epochs=200
# Rebuild the curve of an existing (or still-running, or partly failed) sweep directory:
#   .venv/bin/datadiet-report multirun/scaling_mnist1d
