"""Command line of `python -m core.train`: the preset plus overrides, and the two original guides' flags.

Every flag becomes a `section.key=value` override, so one validator (core.config) checks them all and
the original Vertex job's argument list works unchanged.
"""
from __future__ import annotations

import argparse
import os
from typing import Mapping

from core.config import Config, load_preset

# Vertex guide (snake_case) and transformer guide (kebab-case) flags -> preset keys.
LEGACY_FLAGS: dict[str, str] = {
    "splits_path": "data.splits",
    "output_dir": "output.dir",
    "gcs_checkpoint_dir": "output.checkpoint_dir",
    "gcs_model_dir": "output.model_dir",
    "batch_size": "training.batch_size",
    "phase1_epochs": "training.phase1_epochs",
    "phase2_epochs": "training.phase2_epochs",
    "lr_phase1": "training.lr_phase1",
    "lr_phase2": "training.lr_phase2",
    "lambda_fusion": "model.lambda_fusion",
    "alpha_emd": "loss.alpha_emd",
    "beta_edge": "loss.beta_edge",
    "beta_center": "loss.beta_center",
    "use_sampler": "training.use_sampler",
    "epochs": "training.phase2_epochs",        # the transformer guide had one phase: it maps to the main one
    "learning_rate": "training.lr_phase2",
    "seed": "training.seed",
    "resume": "output.resume",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m core.train",
        description="Train the dual-branch PSA grader from a preset (local, cloud, or a TOML file).",
        epilog="Exit codes: 0 done, 2 bad input or NaN loss, 75 preempted (resume with --resume auto).")
    p.add_argument("--preset", "--config", dest="preset", default=None,
                   help="preset name (local, cloud, smoke) or path to a TOML preset (default: local; cloud inside a "
                        "Vertex AI job or the training image, PSA_DEFAULT_PRESET when set)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one preset key (repeatable), e.g. --set training.lr_phase2=1e-4")
    p.add_argument("--mode", choices=("local", "cloud"), default=None,
                   help="cloud: default preset 'cloud', resume auto, JSON lines on stdout")
    p.add_argument("--output-dir", "--output_dir", dest="output_dir")
    p.add_argument("--splits_path", "--splits-path", dest="splits_path")
    p.add_argument("--gcs_checkpoint_dir", "--checkpoint-dir", dest="gcs_checkpoint_dir")
    p.add_argument("--gcs_model_dir", "--model-dir", dest="gcs_model_dir")
    p.add_argument("--epochs", type=str, help="epochs of phase 2 (the main phase)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=str)
    p.add_argument("--learning-rate", "--learning_rate", dest="learning_rate", type=str,
                   help="peak learning rate of phase 2")
    for flag in ("phase1_epochs", "phase2_epochs", "lr_phase1", "lr_phase2", "lambda_fusion", "alpha_emd",
                 "beta_edge", "beta_center"):
        p.add_argument(f"--{flag}", type=str)
    p.add_argument("--use_sampler", "--use-sampler", dest="use_sampler", nargs="?", const="true",
                   help="true/false (a bare flag means true)")
    p.add_argument("--fp16", action="store_true", help="fp16 mixed precision (CUDA)")
    p.add_argument("--no-early-stopping", action="store_true")
    p.add_argument("--seed", type=str)
    p.add_argument("--resume", help="auto (newest complete checkpoint), none, or a checkpoint path")
    p.add_argument("--log-format", choices=("auto", "json", "text"), default="auto",
                   help="stdout format: JSON metric lines, readable text, or auto (text on a TTY)")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective config (preset + overrides) as TOML and exit without training")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def default_preset(env: Mapping[str, str] = os.environ) -> str:
    """The preset a run without --preset starts from.

    PSA_DEFAULT_PRESET when set (the training image sets it to `cloud`); else `cloud` inside a Vertex AI
    job (Vertex sets CLOUD_ML_JOB_ID and the AIP_* variables, README "Where outputs land"), so the
    Vertex guide's own `--args` list, which names no preset, gets the GPU settings and not the laptop's;
    else `local`.
    """
    chosen = env.get("PSA_DEFAULT_PRESET", "").strip()
    if chosen:
        return chosen
    if env.get("CLOUD_ML_JOB_ID") or any(key.startswith("AIP_") for key in env):
        return "cloud"
    return "local"


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    out = []
    for flag, key in LEGACY_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            out.append(f"{key}={value}")
    if args.fp16:
        out.append("training.precision=fp16")
    if args.no_early_stopping:
        out.append("early_stopping.enabled=false")
    return out + list(args.overrides)  # explicit --set wins over legacy flags


def config_from_args(args: argparse.Namespace) -> Config:
    preset = args.preset or args.mode or default_preset()  # --mode local|cloud names its preset
    overrides = overrides_from_args(args)
    if args.mode == "cloud" and args.resume is None and not any(o.startswith("output.resume=") for o in overrides):
        overrides.insert(0, "output.resume=auto")
    return load_preset(preset, overrides)
