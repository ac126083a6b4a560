"""What each of 2 DDP ranks (gloo, CPU) holds at N = 1 M examples: the figures of docs/scale.md.

The run is a subprocess running ``ddp_scripts/rank_memory.py`` (a probe with DifficultyCallback's default
scores and DynamicPruning; see its docstring for what is measured), with glibc's mmap threshold pinned so
that freed arrays leave the resident set.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from _equivalence import SCRIPTS

#: Bytes per example every rank holds: el2n 4 + margin 4 + forgetting 14 + the presented ledger 1
#: (DifficultyCallback), scores 8 + epoch losses 4 (DynamicPruning); the score table el2n, margin and
#: forgetting in float32 plus forgetting's raw count.
STATE, TABLE, LABELS = 4 + 4 + 14 + 1 + 8 + 4, 4 * 4, 8


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_memory")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "MALLOC_MMAP_THRESHOLD_": "131072"}
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "rank_memory.py"), "--out", str(out), "--devices", "2"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return [dict(np.load(out / f"rank{rank}_of2.npz")) for rank in range(2)]


@pytest.mark.slow
def test_every_rank_holds_the_whole_state_and_peaks_within_it(ranks):
    for rank in ranks:
        size = int(rank["num_examples"])
        assert int(rank["world_size"]) == 2 and size == 1_000_000
        # DDP does not shard the per-example state: each rank holds all N examples' statistics and table
        assert int(rank["state_bytes"]) == STATE * size
        assert int(rank["table_bytes"]) == TABLE * size
        # epoch end: the merges (all_reduce MIN of each NaN-for-unseen buffer) cost a copy and a mask each
        assert rank["epoch_end_peak"] <= 0.5 * rank["state_bytes"], rank["epoch_end_peak"] / size
        # end of training: scoring pass, merges and table build, on top of the table and the labels it keeps
        assert rank["train_end_peak"] <= (TABLE + LABELS + STATE) * size, rank["train_end_peak"] / size
