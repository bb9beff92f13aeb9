"""The preset schema: one typed, validated description of a training run, shared by core and cockpit.

A preset is a TOML file with sections ([data], [model], [training], [early_stopping], [loss], [output],
[cloud]). `extends = "local"` pulls in another preset first, so a cloud preset states only what differs.
Every key is declared once here, with its type, default and help; validation, `--set` overrides,
the README reference and the cockpit's form all read this one table.
"""
from __future__ import annotations

import dataclasses
import functools
import difflib
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
TOP_LEVEL_KEYS = ("extends", "description")

BACKBONES = ("resnet18", "resnet34", "resnet50", "efficientnet_b0", "mobilenet_v3_small",
             "mobilenet_v3_large", "convnext_tiny")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DETAIL_KINDS = ("lines", "lines_creases", "tophat")  # the detail channel's maps (core/detail_map.py)
# What a model config, checkpoint or cache that names no kind was made with: the only map there was then.
LEGACY_DETAIL_KIND = "tophat"
ES_METRICS = ("val_qwk", "val_loss", "val_mae", "val_acc")


class ConfigError(ValueError):
    """A preset or override is wrong; the message is one line naming the file, key and what is expected."""


class ExtendsCycleError(ConfigError):
    """`extends` chains loop back on themselves; reported once, from the file that starts the loop."""


def _f(default: Any, help: str, *, choices: tuple | None = None, min: float | None = None,
       max: float | None = None) -> Any:
    meta = {"help": help, "choices": choices, "min": min, "max": max}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    splits: str = _f("data/synthetic/splits.json",
                     "splits.json path (relative to the working dir, absolute, or gs://bucket/key)")
    synthetic: bool = _f(True, "generate the built-in synthetic card set at `splits` when it is missing")
    synthetic_n: int = _f(2000, "number of synthetic cards to generate", min=30)
    synthetic_seed: int = _f(0, "seed of the synthetic generator (same cards on every machine)")
    synthetic_size: list = _f([200, 280], "synthetic scan size [width, height] in pixels")
    image_size: list = _f([128, 176], "model input size [width, height]; cards are resized to it")
    crop_size: int = _f(0, "side in pixels of the crops per scan (4 corners, `edge_crops` along each edge) seen "
                           "beside the whole card; 0 = no crops", min=0)
    crop_fraction: float = _f(0.24, "side of each crop box as a share of the scan's shorter side, cut before the "
                                    "resize (native resolution when it equals crop_size)", min=0.01, max=0.5)
    edge_crops: int = _f(1, "crops along each card edge between the corner crops, spread evenly (1 = the edge's "
                            "midpoint)", min=1, max=8)
    detail: bool = _f(False, "a 4th input channel beside the whole-card view (a 5th with detail_kind "
                             "\"lines_creases\"): thin bright lines (scratches, print lines) found on the scan "
                             "before the resize and max-pooled to it")
    detail_kind: str = _f("lines", "what the detail channel shows: \"lines\" = long thin bright lines at a slant "
                                   "(scratches; the print's own marks run along the card's axes); "
                                   "\"lines_creases\" = those plus a 5th channel of creases (long bright lines "
                                   "about 2 px wide); \"tophat\" = every thin bright mark (the first version, what "
                                   "older models read)", choices=DETAIL_KINDS)
    augment: bool = _f(True, "label-preserving augmentation (colour jitter, blur, small rotation)")
    cache: bool = _f(True, "decode once into a pre-resized uint8 cache reused by later epochs and runs")
    cache_dir: str = _f("", "where the uint8 cache and downloaded gs:// images live (default: ~/.cache/psa)")
    num_workers: int = _f(0, "DataLoader worker processes (0 = load in the main process)", min=0)
    pin_memory: bool = _f(True, "pin host memory for faster host-to-GPU copies (GPU only)")
    persistent_workers: bool = _f(True, "keep DataLoader workers alive between epochs")
    prefetch_factor: int = _f(2, "batches each worker loads ahead", min=1)


@dataclass
class ModelConfig:
    backbone: str = _f("mobilenet_v3_small", "torchvision backbone for each side", choices=BACKBONES)
    weights: str = _f("", "backbone start: empty = random init; \"imagenet\" = torchvision's ImageNet weights from "
                          "the torch cache (downloaded once if missing); or a local .pth state dict")
    lambda_fusion: float = _f(0.7, "weight of the back branch in the fused logits (front gets 1 - this)",
                              min=0.0, max=1.0)
    dropout: float = _f(0.2, "dropout before the heads", min=0.0, max=0.9)
    channels_last: bool = _f(True, "channels_last memory format (faster convolutions on GPU)")
    compile: bool = _f(False, "torch.compile the model")
    concurrent_sides: bool = _f(True, "on a CPU (one process, 2 or more threads), run the back's and the front's "
                                      "networks at the same time, each on half the threads: phase-2 steps 8 - 17% "
                                      "faster on 2 cores, the same maths (sums split differently over threads)")
    criteria: bool = _f(True, "criterion heads: sub-grades 1-10 for centering, corners, edges, surface "
                              "(trained where splits.json has `subgrades`)")
    measure_centering: bool = _f(False, "measure each side's border shares from pixel profiles of the edge crops and "
                                        "the card view (needs data.crop_size > 0 and centering labels in "
                                        "splits.json) and read the centering sub-grade from them through PSA's "
                                        "bands")
    reads: int = _f(1, "read each card this many times at test, evaluation, prediction and serving, its scans "
                       "moved by a pixel between reads, and grade the mean distribution (training is the same; "
                       "each read costs a forward pass; recorded in the export)", min=1, max=9)


@dataclass
class TrainingConfig:
    batch_size: int = _f(32, "samples per optimizer micro-batch", min=1)
    eval_batch_size: int = _f(128, "samples per forward pass when evaluating (no gradients: larger is faster)",
                              min=1)
    grad_accum_steps: int = _f(1, "micro-batches per optimizer step (effective batch = batch_size x this)",
                               min=1)
    phase1_epochs: int = _f(10, "epochs of phase 1 (back branch only)", min=0)
    phase2_epochs: int = _f(30, "epochs of phase 2 (both branches, fused)", min=0)
    lr_phase1: float = _f(1e-3, "peak learning rate in phase 1", min=0.0)
    lr_phase2: float = _f(3e-4, "peak learning rate in phase 2", min=0.0)
    weight_decay: float = _f(0.01, "AdamW weight decay", min=0.0)
    max_grad_norm: float = _f(1.0, "gradient clipping norm (0 = off)", min=0.0)
    precision: str = _f("auto", "auto: bf16 on GPUs that support it, fp16 on older GPUs; on a CPU bf16 where it "
                                "is native (AVX512-BF16, AMX), else fp32. fp16 without CUDA runs fp32",
                        choices=PRECISIONS)
    scheduler: str = _f("cosine", "learning-rate schedule (HuggingFace semantics)", choices=SCHEDULERS)
    warmup_ratio: float = _f(0.0, "share of a phase's steps spent warming up", min=0.0, max=1.0)
    warmup_steps: int = _f(0, "warm-up steps per phase; overrides warmup_ratio when > 0", min=0)
    num_cycles: float = _f(0.0, "cosine cycles (0 = the scheduler's default: 0.5 cosine, 1 with restarts)",
                           min=0.0)
    power: float = _f(1.0, "polynomial schedule power", min=0.0)
    lr_end: float = _f(1e-7, "polynomial schedule final learning rate", min=0.0)
    use_sampler: bool = _f(True, "imbalanced sampler: draw a grade with P proportional to 1/freq^sampler_power "
                                    "(what it does to the prior is taken back when grades are read)")
    sampler_power: float = _f(0.5, "exponent of the sampler's inverse frequency", min=0.0, max=1.0)
    seed: int = _f(42, "seed of every random generator")
    deterministic: bool = _f(False, "deterministic kernels (bitwise-reproducible on CPU, slower on GPU)")
    log_every_steps: int = _f(50, "emit a `step` metric line every N optimizer steps", min=1)
    bn_recompute_batches: int = _f(0, "after each epoch, recompute BatchNorm statistics over this many clean "
                                      "training batches (0 = keep the running averages)", min=0)
    max_steps_per_epoch: int = _f(0, "cap optimizer steps per epoch (0 = full epoch); for smoke tests", min=0)


@dataclass
class EarlyStoppingConfig:
    enabled: bool = _f(True, "stop a phase when the metric stops improving, then restore its best weights")
    metric: str = _f("val_qwk", "metric watched", choices=ES_METRICS)
    mode: str = _f("max", "whether larger (max) or smaller (min) is better", choices=("max", "min"))
    patience: int = _f(5, "epochs without improvement before stopping", min=1)
    min_delta: float = _f(0.001, "smallest change that counts as an improvement", min=0.0)


@dataclass
class LossConfig:
    alpha_emd: float = _f(0.7, "weight of squared EMD; cross-entropy gets 1 - alpha_emd", min=0.0, max=1.0)
    beta_edge: float = _f(0.05, "weight of the edge-damage regression loss", min=0.0)
    beta_center: float = _f(0.1, "weight of the centering regression loss", min=0.0)
    beta_criteria: float = _f(0.5, "weight of the criterion sub-grade loss (model.criteria)", min=0.0)


@dataclass
class OutputConfig:
    dir: str = _f("outputs/local", "run directory: training.log, config, metrics, report (local or gs://)")
    checkpoint_dir: str = _f("", "checkpoints (default: AIP_CHECKPOINT_DIR, else <dir>/checkpoints)")
    model_dir: str = _f("", "exported model (default: AIP_MODEL_DIR, else <dir>/model)")
    tensorboard_dir: str = _f("", "TensorBoard scalars (default: AIP_TENSORBOARD_LOG_DIR; empty = off)")
    save_every: int = _f(5, "write checkpoint_epoch_N.pth every N epochs (0 = never)", min=0)
    keep_last: int = _f(3, "how many checkpoint_epoch_N / step checkpoints to keep", min=1)
    resume: str = _f("none", "none, auto (newest complete checkpoint), or a checkpoint path")


@dataclass
class CloudConfig:
    project: str = _f("", "Google Cloud project id")
    region: str = _f("us-central1", "Vertex AI region")
    bucket: str = _f("", "GCS bucket (name or gs://name) for data, checkpoints and the model")
    image: str = _f("psa/psa-trainer", "Artifact Registry repository/image name")
    machine_type: str = _f("n1-standard-8", "Compute Engine machine type")
    accelerator_type: str = _f("NVIDIA_TESLA_T4", "GPU type (Vertex enum) or empty for CPU only")
    accelerator_count: int = _f(1, "GPUs per replica", min=0)
    replica_count: int = _f(1, "replicas (1 = chief only; more adds worker pool replicas)", min=1)
    spot: bool = _f(False, "use Spot VMs (cheaper, may be preempted; the trainer resumes)")
    timeout: str = _f("7d", "job timeout, e.g. 90m, 12h, 7d")
    restart_job_on_worker_restart: bool = _f(True, "restart the job when a worker restarts")
    boot_disk_type: str = _f("pd-ssd", "boot disk type", choices=("pd-ssd", "pd-standard", "pd-balanced"))
    boot_disk_size_gb: int = _f(100, "boot disk size in GB", min=10)
    service_account: str = _f("", "service account email the job runs as (empty = Vertex default)")
    labels: dict = _f({}, "labels added to the job (string keys and values)")
    max_cost_usd: float = _f(0.0, "refuse a submit whose estimate exceeds this, and stop the job before it "
                                  "costs more (0 = no limit)", min=0.0)
    # Kept only so a preset that sets them gets a clear refusal (check_value), not "unknown key".
    vertex_endpoint: str = _f("", "refused when set: use the env var PSA_VERTEX_ENDPOINT")
    logging_endpoint: str = _f("", "refused when set: use the env var PSA_LOGGING_ENDPOINT")
    storage_endpoint: str = _f("", "refused when set: use the env var STORAGE_EMULATOR_HOST")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    cloud: CloudConfig = field(default_factory=CloudConfig)
    description: str = ""
    source: str = ""  # the preset file this came from, for messages

    def to_dict(self) -> dict:
        out = {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
        if self.description:
            out["description"] = self.description
        return out


SECTIONS: dict[str, type] = {
    "data": DataConfig, "model": ModelConfig, "training": TrainingConfig,
    "early_stopping": EarlyStoppingConfig, "loss": LossConfig, "output": OutputConfig, "cloud": CloudConfig,
}


@dataclass(frozen=True)
class FieldSpec:
    section: str
    key: str
    type: type
    default: Any
    help: str
    choices: tuple | None
    min: float | None
    max: float | None


def schema() -> list[FieldSpec]:
    """Every preset key, in declaration order: for docs, forms and validation."""
    return list(_schema_by_key().values())


@functools.cache
def _schema_by_key() -> dict[tuple[str, str], FieldSpec]:
    # Built once: get_type_hints is slow (milliseconds per call), and the cockpit's form asks for a
    # spec per row, so rebuilding it per lookup cost a visible part of the cockpit's start-up.
    specs = {}
    for section, cls in SECTIONS.items():
        hints = get_type_hints(cls)
        default_obj = cls()
        for f in dataclasses.fields(cls):
            specs[(section, f.name)] = FieldSpec(section, f.name, hints[f.name], getattr(default_obj, f.name),
                                                 f.metadata["help"], f.metadata["choices"], f.metadata["min"],
                                                 f.metadata["max"])
    return specs


def field_spec(section: str, key: str) -> FieldSpec:
    spec = _schema_by_key().get((section, key))
    if spec is None:
        raise ConfigError(f"unknown key '{section}.{key}'{_did_you_mean(key, _keys_of(section))}")
    return spec


# ---------------------------------------------------------------------------------------------------------
# Validation


def _did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _keys_of(section: str) -> list[str]:
    cls = SECTIONS.get(section)
    return [f.name for f in dataclasses.fields(cls)] if cls else []


# A preset is shared and checked in; an endpoint in it would receive the user's Google access token
# (cockpit/clients.py). Non-Google endpoints come only from these environment variables.
ENDPOINT_ENV = {"vertex_endpoint": "PSA_VERTEX_ENDPOINT", "logging_endpoint": "PSA_LOGGING_ENDPOINT",
                "storage_endpoint": "STORAGE_EMULATOR_HOST"}

_TYPE_WORDS = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a table"}


def check_value(spec: FieldSpec, value: Any, where: str) -> Any:
    """Return the value coerced to the field's type, or raise ConfigError naming `where` and the key."""
    name = f"{where}: {spec.section}.{spec.key}"
    t = spec.type
    ok = isinstance(value, t) and not (t is int and isinstance(value, bool))
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise ConfigError(f"{name} = {value!r} must be {_TYPE_WORDS[t]}")
    if t is float and value != value:
        raise ConfigError(f"{name} = nan must be a finite number")
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{name} = {value!r} must be one of: {', '.join(spec.choices)}"
                          f"{_did_you_mean(str(value), spec.choices)}")
    if spec.min is not None and value < spec.min:
        raise ConfigError(f"{name} = {value!r} must be >= {spec.min:g}")
    if spec.max is not None and value > spec.max:
        raise ConfigError(f"{name} = {value!r} must be <= {spec.max:g}")
    if spec.key in ("image_size", "synthetic_size"):
        if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 16
                                      for v in value):
            raise ConfigError(f"{name} = {value!r} must be [width, height], two integers >= 16")
    if spec.key == "labels":
        for k, v in value.items():
            if not isinstance(v, str):
                raise ConfigError(f"{name}: label '{k}' = {v!r} must be a string")
    if spec.key == "timeout":
        parse_duration(value, name)
    if spec.section == "cloud" and spec.key in ENDPOINT_ENV and value:
        raise ConfigError(f"{name} = {value!r}: a preset may not set an API endpoint; remove it "
                          f"(for a local emulator set the environment variable {ENDPOINT_ENV[spec.key]})")
    return value


MAX_DURATION_S = 30 * 86400.0  # far above any sane training job; the Vertex default is 7d (docs/design.md §5)


def parse_duration(text: str, name: str = "timeout") -> float:
    """'90m' -> 5400.0 seconds; accepts s, m, h, d suffixes or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = str(text).strip().lower()
    try:
        if t and t[-1] in units:
            seconds = float(t[:-1]) * units[t[-1]]
        else:
            seconds = float(t)
    except ValueError:
        raise ConfigError(f"{name} = {text!r} must be a duration such as 90m, 12h or 7d") from None
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        # "inf" or 1e20s would overflow the job's timedelta far from here (an OverflowError traceback)
        raise ConfigError(f"{name} = {text!r} must be a finite duration of at most "
                          f"{MAX_DURATION_S // 86400:.0f}d")
    if seconds <= 0:
        raise ConfigError(f"{name} = {text!r} must be a positive duration")
    return seconds


def config_from_dict(raw: dict, where: str = "preset") -> Config:
    """Validate a merged preset dict (no `extends`) and build the typed Config."""
    for key in raw:
        if key not in SECTIONS and key not in TOP_LEVEL_KEYS:
            kind = "section" if isinstance(raw[key], dict) else "key"
            raise ConfigError(f"{where}: unknown {kind} '{key}'"
                              f"{_did_you_mean(key, list(SECTIONS) + list(TOP_LEVEL_KEYS))}")
    sections = {}
    specs = {(s.section, s.key): s for s in schema()}
    for section, cls in SECTIONS.items():
        values = raw.get(section, {})
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: '{section}' must be a table ([{section}])")
        kwargs = {}
        for key, value in values.items():
            spec = specs.get((section, key))
            if spec is None:
                raise ConfigError(f"{where}: unknown key '{section}.{key}'"
                                  f"{_did_you_mean(key, _keys_of(section))}")
            kwargs[key] = check_value(spec, value, where)
        sections[section] = cls(**kwargs)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: description must be a string")
    cfg = Config(**sections, description=description, source=where)
    _check_combinations(cfg, where)
    return cfg


def _check_combinations(cfg: Config, where: str) -> None:
    """Settings that are each valid but wrong together fail now, not an hour into the run."""
    t = cfg.training
    if t.phase1_epochs + t.phase2_epochs == 0:
        raise ConfigError(f"{where}: training.phase1_epochs + training.phase2_epochs must be > 0")
    es = cfg.early_stopping
    wanted = "max" if es.metric in ("val_qwk", "val_acc") else "min"
    if es.enabled and es.mode != wanted:
        raise ConfigError(f"{where}: early_stopping.mode = '{es.mode}' does not fit metric "
                          f"'{es.metric}' (expected '{wanted}')")


# ---------------------------------------------------------------------------------------------------------
# Loading, inheritance and overrides


def resolve_preset_path(ref: str | os.PathLike, relative_to: Path | None = None) -> Path:
    """A preset name ('local'), a file name ('local.toml') or a path -> an existing file."""
    ref = str(ref)
    candidates = [Path(ref)]
    bases = ([relative_to] if relative_to else []) + [Path.cwd() / "presets", PRESETS_DIR]
    for base in bases:
        candidates += [base / ref, base / f"{ref}.toml"]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    known = sorted(p.stem for p in PRESETS_DIR.glob("*.toml")) if PRESETS_DIR.is_dir() else []
    raise ConfigError(f"preset '{ref}' not found (a file path or one of: {', '.join(known)})"
                      f"{_did_you_mean(Path(ref).stem, known)}")


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; tomllib lets the decoder's error through
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the preset as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "labels":
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_preset_dict(ref: str | os.PathLike, _chain: tuple = ()) -> tuple[dict, Path]:
    """Read a preset and everything it extends, merged, with `extends` removed."""
    path = resolve_preset_path(ref, _chain[-1].parent if _chain else None)
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise ExtendsCycleError(f"{_chain[0]}: extends forms a cycle: {cycle}")
    raw = _read_toml(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw, path
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends must be a preset name or path string")
    try:
        base, _ = load_preset_dict(parent, (*_chain, path))
    except ExtendsCycleError:
        raise
    except ConfigError as exc:
        raise ConfigError(f"{path}: extends '{parent}': {exc}") from None
    return deep_merge(base, raw), path


def parse_override(text: str) -> tuple[str, str, Any]:
    """'training.lr_phase1=3e-4' -> ('training', 'lr_phase1', 0.0003), typed by the schema."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set {text!r} must look like section.key=value")
    dotted, value_text = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    if section not in SECTIONS:
        raise ConfigError(f"--set {text!r}: unknown section '{section}'{_did_you_mean(section, SECTIONS)}")
    spec = field_spec(section, key)
    value = parse_value(value_text, spec)
    return section, key, check_value(spec, value, "--set")


def parse_value(text: str, spec: FieldSpec) -> Any:
    """Typed text -> a value for `spec`: the one parser of `--set` and the cockpit's form. Booleans take
    true/false, yes/no, 1/0; other text is TOML; text that is neither goes through as a string, so
    check_value names the key and the expected type."""
    text = text.strip()
    if spec.type is str:
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            return text[1:-1]
        return text
    if spec.type is bool and text.lower() in ("true", "false", "1", "0", "yes", "no"):
        return text.lower() in ("true", "1", "yes")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # check_value reports the wrong type with the key's name


def apply_overrides(raw: dict, overrides: list[tuple[str, str, Any]]) -> dict:
    out = deep_merge(raw, {})
    for section, key, value in overrides:
        out.setdefault(section, {})
        out[section] = dict(out[section], **{key: value})
    return out


def load_preset(ref: str | os.PathLike, overrides: list[str] | None = None) -> Config:
    """Load, merge `extends`, apply `section.key=value` overrides and validate."""
    raw, path = load_preset_dict(ref)
    parsed = [parse_override(o) for o in (overrides or [])]
    cfg = config_from_dict(apply_overrides(raw, parsed), where=str(path))
    return cfg


def config_to_toml(cfg: Config) -> str:
    """The effective config as TOML text (saved beside a run's outputs)."""
    lines = []
    if cfg.description:
        lines.append(f"description = {_toml_value(cfg.description)}\n")
    for section, values in cfg.to_dict().items():
        if section == "description":
            continue
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))
