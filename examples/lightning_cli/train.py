"""Your training script with datadiet's pruning callbacks set in YAML.

    cd examples/lightning_cli
    python train.py fit -c config.yaml                     # prunes to half after 2 epochs
    python train.py fit --trainer.callbacks.help PruneDuringFit   # the callback's arguments
    python train.py fit -c config.yaml --trainer.max_epochs=8 --ckpt_path runs/checkpoints/last.ckpt   # resume

(``datadiet-cli fit -c config.yaml`` does the same where ``model_and_data`` is importable.)
"""

from datadiet.cli import PruningCLI

if __name__ == "__main__":
    PruningCLI()  # model and data module by class_path, as in config.yaml
