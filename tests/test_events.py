"""Metric lines: JSON for machines (and the log file), readable text for a person at a TTY."""
import io
import json

from core.config import load_preset
from core.events import EventWriter, metric_line


def test_metric_line_is_one_json_object_with_the_special_keys_first():
    line = metric_line("epoch", "epoch 3", phase=2, epoch=3, val_qwk=0.87)
    data = json.loads(line)
    assert "\n" not in line and list(data)[:3] == ["severity", "message", "event"]
    assert data["val_qwk"] == 0.87


def test_nan_becomes_null_so_the_line_stays_parseable():
    assert json.loads(metric_line("step", "s", train_loss=float("nan")))["train_loss"] is None


def test_text_mode_prints_readable_lines_and_logs_json(tmp_path):
    out = io.StringIO()
    w = EventWriter("text", stream=out)
    w.open_log(str(tmp_path / "training.log"))
    w.emit("start", "training resnet18", config=load_preset("smoke").to_dict())
    w.emit("step", "step 1", step=1)
    w.emit("epoch", "e", phase=2, epoch=3, epochs=12, train_loss=0.41, val_loss=0.52, val_qwk=0.87,
           val_mae=0.31, lr=0.00028, samples_per_s=412.5)
    w.close()
    text = out.getvalue()
    assert "[training] batch_size=16" in text  # the effective config is printed at start
    assert "phase 2 epoch 3/12  train_loss 0.41  val_loss 0.52  val_qwk 0.87" in text
    assert "step 1" not in text  # steps drive the progress bar, not the scrollback
    logged = [json.loads(l) for l in (tmp_path / "training.log").read_text().splitlines()]
    assert [l["event"] for l in logged] == ["start", "step", "epoch"]


def test_json_mode_prints_every_event_and_other_ranks_print_nothing():
    out, quiet = io.StringIO(), io.StringIO()
    EventWriter("json", stream=out).emit("step", "s", step=1)
    EventWriter("json", stream=quiet, enabled=False).emit("step", "s", step=1)
    assert json.loads(out.getvalue())["step"] == 1 and quiet.getvalue() == ""
