"""The run directory: training.log, config.toml and report.json, local or on gs://.

For a gs:// output dir these files are written to a local temp dir and copied up at each epoch end
(and on preemption and at the end), because a log cannot be appended to in Cloud Storage. A restarted
(preempted) job first fetches the earlier attempts' log and appends to it, as a local run does.
A RunDir also resolves where the run's checkpoints, exported model and TensorBoard scalars go.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from core import storage
from core.config import ConfigError


def check_buckets(dirs: dict[str, str]) -> None:
    """A missing gs:// output bucket fails now, on every rank, not at the first checkpoint an epoch in.
    `dirs` maps what a dir is for ("checkpoint dir") to its path."""
    for what, path in dirs.items():
        if storage.is_gcs(path):
            bucket = "gs://" + storage.split_gcs(path)[0]
            if not storage.exists(bucket):
                raise storage.StorageError(f"{path}: bucket {bucket} not found (the {what})")


class RunDir:
    def __init__(self, output, is_main: bool):
        """`output` is the preset's [output] table. Its checkpoint, model and TensorBoard dirs resolve as
        storage.resolve_output_dirs says; a missing gs:// bucket among them fails here (check_buckets)."""
        self.output_dir, self.is_main = output.dir, is_main
        self.checkpoint_dir, self.model_dir, self.tensorboard_dir = storage.resolve_output_dirs(
            output.dir, output.checkpoint_dir, output.model_dir, output.tensorboard_dir)
        check_buckets({"output dir": output.dir, "checkpoint dir": self.checkpoint_dir, "model dir": self.model_dir})
        self.local = Path(tempfile.mkdtemp(prefix="psa-run-")) if storage.is_gcs(output.dir) else Path(output.dir)

    def open(self, events, config_toml: str) -> None:
        """Rank 0: start (or continue) training.log, write config.toml, publish both."""
        if not self.is_main:
            return
        if self.local.exists() and not self.local.is_dir():  # one line, not a FileExistsError traceback
            raise ConfigError(f"output.dir = {self.output_dir!r}: exists and is a file, not a folder")
        self.local.mkdir(parents=True, exist_ok=True)
        log = self.local / "training.log"
        remote_log = storage.join(self.output_dir, "training.log")
        if storage.is_gcs(self.output_dir) and storage.exists(remote_log):
            log.write_bytes(storage.read_bytes(remote_log))
        events.open_log(str(log))
        (self.local / "config.toml").write_text(config_toml, encoding="utf-8")
        self.publish()

    def write_text(self, name: str, text: str) -> None:
        storage.write_text_atomic(str(self.local / name), text)

    def publish(self) -> None:
        """Copy the run files to the gs:// output dir (a no-op for a local one)."""
        if self.is_main and storage.is_gcs(self.output_dir):
            for f in self.local.iterdir():
                if f.is_file():
                    storage.copy_to(str(f), storage.join(self.output_dir, f.name))
