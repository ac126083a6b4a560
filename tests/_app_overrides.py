"""Overrides that shrink the app's config to a few-second run on synthetic data (shared by app tests)."""

SMALL = [
    "data=synthetic",
    "data.num_samples=400",
    "model=mlp",
    "model@probe.model=mlp",
    "model.net.hidden_sizes=[32]",
    "probe.model.net.hidden_sizes=[32]",
    "probe.mode=separate",
    "probe.epochs=2",
    "max_epochs=2",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    # the tests of the strategies' own selection run without the mislabel detector; the default
    # (pruning.mislabelled=auto) has its own tests (test_app_label_noise.py)
    "pruning.mislabelled=null",
]
