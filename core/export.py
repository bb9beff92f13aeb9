"""The exported model: `psa_dual_branch_state_dict.pth` + `psa_dual_branch_config.json`.

The JSON holds everything needed to rebuild the model and feed it (architecture, input size,
normalisation, grade labels), so a user needs neither the preset nor this repository's training code
to serve it.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from datetime import datetime, timezone

import torch

from core import storage
from core.data import IMAGENET_MEAN, IMAGENET_STD
from core.detail_map import detail_channels
from core.model import DualBranchGrader

WEIGHTS_FILE = "psa_dual_branch_state_dict.pth"
CONFIG_FILE = "psa_dual_branch_config.json"
FORMAT_VERSION = 1


class ExportError(ValueError):
    """An export directory is incomplete or does not describe a model; the message names it."""


def export_model(model: DualBranchGrader, model_dir: str, extra: dict | None = None) -> str:
    """Write weights and config into model_dir (local or gs://); returns model_dir."""
    # the detail map's channels are read as x / 255 (core/detail_map.py)
    extra_channel = [0.0] * detail_channels(model.detail_kind) if model.detail else []
    config = {"format_version": FORMAT_VERSION, "model": model.config(),
              "normalization": {"mean": list(IMAGENET_MEAN) + extra_channel,
                                "std": list(IMAGENET_STD) + [1.0] * len(extra_channel), "scale": 255.0},
              "grades": list(range(1, 11)), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "torch_version": torch.__version__, **(extra or {})}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if storage.is_gcs(model_dir):
        with tempfile.TemporaryDirectory(prefix="psa-export-") as tmp:
            _write_local(state, config, tmp)
            for name in (WEIGHTS_FILE, CONFIG_FILE):  # config last: its presence means "complete"
                storage.copy_to(os.path.join(tmp, name), storage.join(model_dir, name))
    else:
        _write_local(state, config, model_dir)
    return model_dir


def export_trained(model: DualBranchGrader, model_dir: str, sides, report: dict, cfg) -> str:
    """export_model at the end of training, with what the run knows beside the model: the input size
    (of `cfg`, the run's core.config.Config), the sides it reads, how many reads grade a card
    (core/reads.py), its test metrics (qwk, mae, accuracy, within_one of `report`) and the preset it was
    trained with."""
    return export_model(model, model_dir, {
        "image_size": list(cfg.data.image_size), "sides": list(sides), "reads": cfg.model.reads,
        "test_metrics": {k: report[k] for k in ("qwk", "mae", "accuracy", "within_one")}, "preset": cfg.source})


def _write_local(state: dict, config: dict, model_dir: str) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    storage.write_bytes_atomic(os.path.join(model_dir, WEIGHTS_FILE), buf.getvalue())
    storage.write_text_atomic(os.path.join(model_dir, CONFIG_FILE), json.dumps(config, indent=2))


def load_exported(model_dir: str, device: str | torch.device = "cpu") -> tuple[DualBranchGrader, dict]:
    """Rebuild the exported model in eval mode, with its config."""
    cfg_path, w_path = storage.join(model_dir, CONFIG_FILE), storage.join(model_dir, WEIGHTS_FILE)
    try:
        config = json.loads(storage.read_text(cfg_path))
    except storage.StorageError as exc:
        raise ExportError(f"{model_dir}: not an exported model ({exc})") from None
    except ValueError as exc:  # bad JSON or not UTF-8
        raise ExportError(f"{cfg_path}: unreadable export config ({type(exc).__name__})") from None
    try:
        data = storage.read_bytes(w_path)
        with warnings.catch_warnings():  # torch warns on stderr about odd pickles before failing
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except storage.StorageError as exc:
        raise ExportError(f"{model_dir}: not an exported model ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a corrupt or foreign file
        raise ExportError(f"{w_path}: corrupt export weights, not a torch state dict "
                          f"({type(exc).__name__})") from None
    if "model" not in config or "image_size" not in config:
        raise ExportError(f"{cfg_path}: missing 'model' or 'image_size' (expected an export of core.train)")
    try:
        model = DualBranchGrader.from_config(config["model"]).to(device)
        model.load_state_dict(state)
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:  # another architecture or a bad config
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExportError(f"{model_dir}: the weights do not fit the exported config ({first})") from None
    model.eval()
    return model, config


def load_from_checkpoint(path: str, device: str | torch.device = "cpu") -> tuple[DualBranchGrader, dict]:
    """A model from a training checkpoint (phaseN_best.pth, last.pth, checkpoint_epoch_N.pth)."""
    from core import checkpoint

    state = checkpoint.load(path, device)
    sig = state.get("model_signature")
    if not sig or "model" not in state:
        raise ExportError(f"{path}: not a psa-cockpit training checkpoint")
    model = DualBranchGrader.from_config(sig).to(device)
    model.load_state_dict(state["model"])
    model.eval()
    sides = ["back"] if state.get("phase", state.get("position", {}).get("phase")) == 1 else ["front", "back"]
    config = {"model": {k: sig[k] for k in sig if k != "image_size"}, "image_size": sig["image_size"], "sides": sides}
    # How many reads grade a card (core/reads.py): a phaseN_best.pth says, a training checkpoint holds the
    # run's config; one written before reads existed is read once.
    reads = state.get("reads", (state.get("config") or {}).get("model", {}).get("reads"))
    return model, {**config, "reads": reads} if reads is not None else config
