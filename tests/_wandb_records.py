"""Reads an offline W&B run file (``run-<id>.wandb``) back into protobuf records, for tests.

The file is W&B's LevelDB-style log: a 7-byte header (``:W&B`` + magic + version), then 32 KiB blocks
of chunks, each ``crc32c (4) | length (2) | type (1) | payload``; type 1 is a whole record, 2/3/4 the
first/middle/last piece of one. Each record is a ``wandb_internal_pb2.Record``.
"""

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

_BLOCK = 32 * 1024
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def read_records(path):
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    position, pending = _HEADER, b""
    while position + _HEADER <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < _HEADER:  # block trailer padding
            position += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + _HEADER])
        if kind == 0 and length == 0:
            position += left_in_block
            continue
        chunk = data[position + _HEADER : position + _HEADER + length]
        position += _HEADER + length
        pending = chunk if kind in (_FULL, _FIRST) else pending + chunk
        if kind in (_FULL, _LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


class OfflineRun:
    """What one offline run recorded: its group and job type, config keys, summary, history keys, artifacts."""

    def __init__(self, run_dir):
        self.directory = Path(run_dir)
        (path,) = self.directory.glob("run-*.wandb")
        self.group = self.job_type = self.name = None
        self.config_keys, self.summary, self.history_keys, self.artifacts = set(), {}, set(), []
        for record in read_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                self.group, self.job_type, self.name = (
                    record.run.run_group,
                    record.run.job_type,
                    record.run.display_name,
                )
            elif kind == "config":
                self.config_keys.update(item.key or "/".join(item.nested_key) for item in record.config.update)
            elif kind == "summary":
                for item in record.summary.update:
                    key = item.key or "/".join(item.nested_key)
                    self.summary[key] = json.loads(item.value_json)
            elif kind == "history":
                self.history_keys.update(item.key or "/".join(item.nested_key) for item in record.history.item)
            elif kind == "artifact":
                self.artifacts.append(
                    {"name": record.artifact.name, "type": record.artifact.type,
                     "files": sorted(entry.path for entry in record.artifact.manifest.contents)}
                )  # fmt: skip

    def file(self, relative):
        return self.directory / "files" / relative


def offline_runs(folder):
    """Every offline run under ``folder`` (any depth)."""
    return [OfflineRun(path) for path in sorted(Path(folder).glob("**/wandb/offline-run-*"))]
