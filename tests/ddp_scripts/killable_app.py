"""The ``datadiet`` app, SIGKILLed at a chosen training step when ``DATADIET_TEST_KILL=phase:step`` is set.

``phase`` is ``probe`` or ``train``; the process kills itself with SIGKILL inside ``training_step`` of
that phase once ``trainer.global_step`` reaches ``step`` — no cleanup, no checkpoint of the epoch in
progress, exactly like an out-of-memory kill or a pre-empted node. Without the variable this is the
plain app, so a restart is the same command.
"""

import os
import signal

from datadiet.app import main
from datadiet.models import Classifier

_KILL = os.environ.get("DATADIET_TEST_KILL")

if _KILL:
    phase, step = _KILL.split(":")
    prefix = {"probe": "probe/", "train": ""}[phase]
    original_step = Classifier.training_step

    def training_step(self, batch, batch_idx):
        if self.hparams.log_prefix == prefix and self.trainer.global_step >= int(step):
            os.kill(os.getpid(), signal.SIGKILL)
        return original_step(self, batch, batch_idx)

    Classifier.training_step = training_step

if __name__ == "__main__":
    main()
