"""The run directory: training.log, config.toml and report.json, local or on gs://.

For a gs:// output dir these files are written to a local temp dir and copied up at each epoch end
(and on preemption and at the end), because a log cannot be appended to in Cloud Storage. A restarted
(preempted) job first fetches the earlier attempts' log and appends to it, as a local run does.
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
    def __init__(self, output_dir: str, is_main: bool):
        self.output_dir, self.is_main = output_dir, is_main
        self.local = Path(tempfile.mkdtemp(prefix="psa-run-")) if storage.is_gcs(output_dir) else Path(output_dir)

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
