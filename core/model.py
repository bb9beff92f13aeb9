"""DualBranchGrader: one torchvision backbone per card side, grade/edge/centering heads, fused by weight.

The back branch carries `lambda_fusion` of the vote (backs show edge wear more clearly, docs/design.md §2).
Phase 1 trains the back branch alone (`forward(back)`); phase 2 starts from phase 1's best weights with
the front backbone copied from the back one (`init_from_phase1`) and trains both (`forward(back, front)`).
Backbones are built with weights=None; `weights` may name a local torchvision state dict for the
architecture, or "imagenet" for torchvision's default ImageNet weights from the torch cache
(core/weights.py), loaded into both branches' feature extractors. With `measure_centering` each side's
centering comes from a BorderReader (pixel profiles of its borders, no shared weights) instead of a head.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from core.concurrent_sides import SideThreads, both_sides
from core.config import DETAIL_KINDS, LEGACY_DETAIL_KIND, ConfigError
from core.detail_map import detail_channels
from core.records import CRITERIA
from core.weights import IMAGENET, WeightsError, imagenet_file  # noqa: F401 (WeightsError: core.train)

# Keep in sync with core.config.BACKBONES (a test checks it).
BACKBONES = ("resnet18", "resnet34", "resnet50", "efficientnet_b0", "mobilenet_v3_small",
             "mobilenet_v3_large", "convnext_tiny")


def build_backbone(name: str) -> tuple[nn.Module, int, str]:
    """(feature extractor returning pooled features [B, dim], dim, prefix of the stripped classifier keys).

    The torchvision module is kept whole with only the final classification layer replaced by Identity,
    so its own global pool runs and its state-dict keys stay torchvision's: a torchvision weights file
    loads as is. MobileNetV3 keeps its pre-logits Linear + Hardswish and ConvNeXt its final LayerNorm,
    because those are part of the learned representation, not of the 1000-class ImageNet head.
    """
    if name not in BACKBONES:
        raise ValueError(f"model.backbone={name!r}: expected one of {', '.join(BACKBONES)}")
    net = getattr(torchvision.models, name)(weights=None)
    if name.startswith("resnet"):
        dim, net.fc, prefix = net.fc.in_features, nn.Identity(), "fc."
    elif name.startswith("convnext"):
        dim, prefix = net.classifier[2].in_features, "classifier.2."
        net.classifier[2] = nn.Identity()
    elif name.startswith("mobilenet_v3"):
        dim, prefix = net.classifier[0].out_features, "classifier.3."
        net.classifier = net.classifier[:2]
    else:  # efficientnet: classifier = [Dropout, Linear]; our own dropout replaces theirs
        dim, net.classifier, prefix = net.classifier[1].in_features, nn.Identity(), "classifier."
    return net, dim, prefix


def load_backbone_weights(net: nn.Module, path: str, head_prefix: str, name: str) -> None:
    """Load a local torchvision state dict into `net`, ignoring the stripped classifier's keys.

    Raises WeightsError naming the path (missing/unreadable file) or a few offending keys (mismatch).
    """
    if not os.path.isfile(path):
        raise WeightsError(f"model.weights: {path} does not exist; expected a local .pth state dict for {name}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or non-tensor file
        raise WeightsError(f"model.weights: cannot read {path} as a state dict ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"model.weights: {path} is not a state dict (name -> tensor) for {name}")
    state = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        details = "; ".join(f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                            for label, keys in (("missing", missing), ("unexpected", unexpected),
                                                ("wrong shape", wrong)) if keys)
        raise WeightsError(f"model.weights: {path} does not match {name} ({details})")
    net.load_state_dict(state, strict=False)  # keys checked above; strict would want the stripped head


def widen_stem(net: nn.Module, extra: int, pretrained: bool) -> None:
    """Give the backbone's first convolution `extra` more input channels (the detail map,
    core/detail_map.py). Pretrained, their weights start at zero: the widened network computes exactly
    what it did, ImageNet features included, until training finds a use for the new channel. From scratch,
    they are drawn like the colour channels' (same spread), so the new channel learns from the first step."""
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            wide = nn.Conv2d(3 + extra, module.out_channels, module.kernel_size, module.stride, module.padding,
                             module.dilation, module.groups, module.bias is not None, module.padding_mode)
            with torch.no_grad():
                if pretrained:
                    wide.weight.zero_()
                else:
                    wide.weight.normal_(0.0, float(module.weight.std()))
                wide.weight[:, :3].copy_(module.weight)
                if module.bias is not None:
                    wide.bias.copy_(module.bias)
            parent_name, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent_name) if parent_name else net, child, wide)
            return
    raise ValueError("backbone has no 3-channel input convolution to widen")


# What a model config without "crop_pool" was made with: crops pooled by their mean alone.
LEGACY_CROP_POOL = "avg"


class CropEncoder(nn.Module):
    """A light CNN for the native-resolution crops of a side (4 corners, then `edge_crops` per edge, each
    turned so the card's outer corner/edge is top-left/top): -> [B, 4 * per-crop dim] = mean and max of the
    corners' features, then of the edges'. Small on purpose: whitening or a chip a pixel or two wide is
    local texture, and 16 or more crops per card must cost far less than the whole-card backbone.

    Each crop's feature map is pooled by its mean and its maximum (`pool = "avgmax"`, per-crop dim
    2 x width). A chip two or three pixels deep lights a cell or two of the final 6x6 map; averaged over the
    36 cells its response all but vanishes, most of all for a white chip on a cream border (12-21 grey
    levels). The maximum keeps it, as a grader's eye stops at the one flaw. Trained on the crops alone (both
    sides, 3,200 cards; sub-grades of 1,920 cards of seed 7), edge sub-grades read two or more off fell from
    151 to 79, edges of 8 read as 10 from 55 to 10 of 173, corners two or more off from 25 to 11
    (docs/design.md §12). "avg", the mean alone, is how models made before it read their crops."""

    POOLS = ("avg", "avgmax")

    @classmethod
    def check_pool(cls, pool: str) -> None:
        """A pool this encoder knows, or a ValueError naming the value and the choices."""
        if pool not in cls.POOLS:
            raise ValueError(f"model crop_pool={pool!r}: expected one of {', '.join(cls.POOLS)}")

    def __init__(self, width: int = 64, edge_crops: int = 1, pool: str = "avgmax"):
        super().__init__()
        self.check_pool(pool)
        layers, c_in = [], 3
        for c_out, stride in ((24, 2), (48, 2), (width, 2), (width, 1)):
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        # The state-dict keys stay net.0 ... net.11 whatever the pool: a pool has no weights.
        self.net = nn.Sequential(*layers)
        self.pool, self.per_crop = pool, width * (2 if pool == "avgmax" else 1)
        self.dim, self.crops = 4 * self.per_crop, 4 + 4 * edge_crops

    def forward(self, crops: Tensor) -> Tensor:
        maps = self.net(crops)
        f = maps.mean((2, 3)) if self.pool == "avg" else torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], dim=1)
        f = f.view(-1, self.crops, self.per_crop)
        corners, edges = f[:, :4], f[:, 4:]
        return torch.cat([corners.mean(1), corners.amax(1), edges.mean(1), edges.amax(1)], dim=1)


def lower_median(x: Tensor, dim: int) -> Tensor:
    """`x.median(dim).values`: along `dim`, the middle value, the lower of the two for an even count.

    On the CPU numpy's partition finds it (a selection, where torch sorts): one side's edge-crop medians
    21 -> 9 ms, about 2% of a local-preset training step (benchmarks/bench_step.py), the same values to the
    bit (tests/test_measured_centering.py). Elsewhere, or where a gradient must flow, torch's own.
    Inputs are pixels: no NaN, where the two would differ (numpy sorts NaN last, torch returns it)."""
    if x.device.type != "cpu" or x.requires_grad or x.dtype == torch.bfloat16:  # numpy has no bf16
        return x.median(dim=dim).values
    k = (x.shape[dim] - 1) // 2
    return torch.from_numpy(np.asarray(np.partition(x.numpy(), k, axis=dim).take(k, axis=dim)))


class BorderReader(nn.Module):
    """Measures a side's centering -> [B, 2] border shares (lr, tb) in (0, 1), from two kinds of profile:

    - each edge's crops at native resolution: the median over a crop's columns, then over the edge's
      crops, is one row of pixels from the scan's edge inward (bed, card edge, border, print) that a chip
      or a scratch in a few columns does not move; a small MLP shared by the four edges reads each one.
      Precise, but a 48 px crop can end inside a border of 85/15 or worse, where the print never shows.
    - the whole-card view's median row and column through its middle half, resampled to a fixed length:
      coarse (a view pixel is about three scan pixels), but it always holds both borders and the print.
    A last MLP turns both readings into the two shares. It has no weights in common with the backbone or
    the crop encoder, so its loss (loss.beta_center) teaches geometry without pulling them away from
    corners, edges and surface. Why: a head on the shared features read front shares no better than
    guessing 50/50 (mean error 0.045, and one PSA band is 0.05 wide); this reads them to about 0.008
    (docs/design.md §12). Float32 under autocast: bf16 keeps about 3 significant digits, a share needs
    0.01 of 0.5.
    """

    VIEW_PROFILE = 128  # samples per view profile, whatever the view's size: the MLP's input stays fixed

    def __init__(self, crop_size: int, edge_crops: int, width: int = 32):
        super().__init__()
        self.edge_crops = edge_crops
        self.edge = nn.Sequential(nn.Linear(3 * crop_size, 64), nn.ReLU(inplace=True),
                                  nn.Linear(64, width), nn.ReLU(inplace=True))
        self.whole = nn.Sequential(nn.Linear(3 * 2 * self.VIEW_PROFILE, 64), nn.ReLU(inplace=True))
        self.shares = nn.Sequential(nn.Linear(4 * width + 64, 64), nn.ReLU(inplace=True), nn.Linear(64, 2))

    def forward(self, crops: Tensor, view: Tensor) -> Tensor:
        """crops [B * n, 3, s, s] in crop_places order (4 corners, then `edge_crops` per edge, each turned
        so the card's edge is at the top); view [B, C >= 3, H, W], RGB first -> [B, 2]."""
        with torch.autocast(device_type=crops.device.type, enabled=False):
            n = 4 + 4 * self.edge_crops
            edges = crops.float().reshape(-1, n, *crops.shape[1:])[:, 4:]               # [B, 4k, 3, s, s]
            rows = lower_median(edges, dim=-1)                                           # [B, 4k, 3, s]
            profiles = lower_median(rows.reshape(len(rows), 4, self.edge_crops, -1), dim=2)  # [B, 4, 3s]
            rgb = view.float()[:, :3]
            h, w = rgb.shape[-2:]
            down = lower_median(rgb[..., w // 4: w - w // 4], dim=-1)                   # [B, 3, H]
            across = lower_median(rgb[..., h // 4: h - h // 4, :], dim=-2)              # [B, 3, W]
            whole = torch.cat([F.interpolate(p, size=self.VIEW_PROFILE, mode="linear") for p in (down, across)],
                              dim=-1).flatten(1)
            features = torch.cat([self.edge(profiles).flatten(1), self.whole(whole)], dim=1)
            return torch.sigmoid(self.shares(features))


class Branch(nn.Module):
    """One side: backbone -> dropout -> grade logits, edge damage (sigmoid), centering [lr, tb] (sigmoid),
    and with `criteria` a sub-grade distribution per criterion (records.CRITERIA) [B, 4, num_grades].
    With `measure_centering` the centering comes from a BorderReader over the crops and the view instead
    of a head on the shared features."""

    def __init__(self, backbone: str, dropout: float, num_grades: int, criteria: bool = False,
                 crops: bool = False, edge_crops: int = 1, crop_size: int = 0, measure_centering: bool = False,
                 crop_pool: str = "avgmax"):
        super().__init__()
        self.backbone, dim, self.head_prefix = build_backbone(backbone)
        self.crop_encoder = CropEncoder(edge_crops=edge_crops, pool=crop_pool) if crops else None
        dim += self.crop_encoder.dim if crops else 0
        self.dropout = nn.Dropout(dropout)
        self.grade_head = nn.Linear(dim, num_grades)
        self.edge_head = nn.Linear(dim, 1)
        self.border_reader = BorderReader(crop_size, edge_crops) if measure_centering else None
        self.center_head = None if measure_centering else nn.Linear(dim, 2)
        self.criteria_head = nn.Linear(dim, len(CRITERIA) * num_grades) if criteria else None

    def forward(self, x: Tensor, crops: Tensor | None = None) -> dict[str, Tensor]:
        return self.heads(self.features(x, crops), x, crops)

    def features(self, x: Tensor, crops: Tensor | None = None) -> Tensor:
        """The networks: the backbone's pooled features of the view, then the crop encoder's. No random
        numbers are drawn here, so core.concurrent_sides may run one side's on another thread."""
        feats = torch.flatten(self.backbone(x), 1)
        if self.crop_encoder is not None:
            feats = torch.cat([feats, self.crop_encoder(crops)], dim=1)
        return feats

    def heads(self, feats: Tensor, x: Tensor, crops: Tensor | None = None) -> dict[str, Tensor]:
        """Dropout (the global RNG) and the heads on `features`; the border reader measures x and crops."""
        feats = self.dropout(feats)
        out = {"logits": self.grade_head(feats),
               "edge": torch.sigmoid(self.edge_head(feats)).squeeze(1),
               "centering": (self.border_reader(crops, x) if self.border_reader is not None
                             else torch.sigmoid(self.center_head(feats)))}
        if self.criteria_head is not None:
            out["criteria"] = self.criteria_head(feats).view(len(feats), len(CRITERIA), -1)
        return out


class DualBranchGrader(nn.Module):
    """Two branches (back, front) fused with weight `lambda_fusion` on the back.

    forward(back, front=None) returns:
      "logits" [B, num_grades], "edge" [B] in [0, 1], "centering" [B, 4] (front lr, front tb, back lr,
      back tb, the order of CardRecord.centering), "center_valid" [4] bool: which centering columns are
      real predictions; with criterion heads also "criteria" [B, 4, num_grades]: sub-grade logits for
      centering, corners, edges, surface, fused like the grade logits.
    Edge is fused like the logits (lambda-weighted average of the branches' sigmoid outputs) rather than
    predicted from concatenated features: each branch's edge head then exists and trains in phase 1 and
    carries over unchanged into phase 2, and the fused value stays in [0, 1].
    Back-only mode (front=None, phase 1): logits and edge are the back branch's; the front half of
    "centering" repeats the back branch's prediction as a finite placeholder and "center_valid" is
    [False, False, True, True] so the loss (core.losses.grading_loss) ignores it.
    With `measure_centering` (needs crops) each side's centering is measured by a BorderReader, and in
    dual mode the outputs carry "centering_measured": True, so the centering sub-grade is read from the
    four shares through PSA's bands (core/grade_rule.py) instead of from the criterion head.
    Both modes also carry "grade_prior_shift" [num_grades] and "criteria_prior_shift" [4, num_grades]: what
    the grade rule adds to the logits when it reads them (set_prior_shift), never seen by the loss.
    """

    def __init__(self, backbone: str = "mobilenet_v3_small", weights: str = "", lambda_fusion: float = 0.7,
                 dropout: float = 0.2, num_grades: int = 10, criteria: bool = False, crop_size: int = 0,
                 crop_fraction: float = 0.24, detail: bool = False, edge_crops: int = 1,
                 measure_centering: bool = False, detail_kind: str = "lines", crop_pool: str = "avgmax"):
        super().__init__()
        if not 0.0 <= lambda_fusion <= 1.0:
            raise ValueError(f"model.lambda_fusion={lambda_fusion}: expected a value in [0, 1]")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"model.dropout={dropout}: expected a value in [0, 1)")
        if num_grades < 2:
            raise ValueError(f"num_grades={num_grades}: expected at least 2")
        self.backbone_name, self.lambda_fusion = backbone, float(lambda_fusion)
        self.dropout_p, self.num_grades, self.criteria = float(dropout), int(num_grades), bool(criteria)
        # Crops are cut by core.data.crops_of with these settings; they travel with the model so an export
        # or checkpoint is preprocessed exactly as it was trained.
        self.crop_size, self.crop_fraction, self.edge_crops = int(crop_size), float(crop_fraction), int(edge_crops)
        if self.edge_crops < 1:
            raise ValueError(f"data.edge_crops={edge_crops}: expected at least 1")
        self.detail = bool(detail)  # the view carries the detail map as a 4th channel (or 4th and 5th)
        if detail_kind not in DETAIL_KINDS:
            raise ValueError(f"data.detail_kind={detail_kind!r}: expected one of {', '.join(DETAIL_KINDS)}")
        self.detail_kind = detail_kind  # which map (core/detail_map.py): travels with the model
        if measure_centering and self.crop_size <= 0:
            raise ValueError("model.measure_centering = true reads the borders from the edge crops: "
                             "set data.crop_size > 0 (e.g. 48) or measure_centering = false")
        self.measure_centering = bool(measure_centering)
        CropEncoder.check_pool(crop_pool)  # here too: a model without crops builds no encoder to check it
        self.crop_pool = crop_pool  # how each crop's feature map is pooled (CropEncoder): travels with the model
        self.back, self.front = (Branch(backbone, dropout, num_grades, self.criteria, self.crop_size > 0,
                                        self.edge_crops, self.crop_size, self.measure_centering, crop_pool)
                                 for _ in range(2))
        if weights:
            path = imagenet_file(backbone) if weights == IMAGENET else weights
            for branch in (self.back, self.front):
                load_backbone_weights(branch.backbone, path, branch.head_prefix, backbone)
        if self.detail:  # after the weights: a torchvision file fits the 3-channel stem
            for branch in (self.back, self.front):
                widen_stem(branch.backbone, detail_channels(detail_kind), pretrained=bool(weights))
        # Buffers follow .to(device), so forward never copies a mask host-to-device.
        self.register_buffer("_valid_dual", torch.ones(4, dtype=torch.bool), persistent=False)
        self.register_buffer("_valid_back_only", torch.tensor([False, False, True, True]), persistent=False)
        # Taken back from the logits when they are read, never when they are trained: what the imbalanced
        # sampler did to the heads' prior (core.sampling.sampler_prior_shift, set by the trainer). They are
        # saved with the weights, so an export reads its cards as it was validated; zero = no correction.
        self.register_buffer("grade_prior_shift", torch.zeros(num_grades))
        self.register_buffer("criteria_prior_shift", torch.zeros(len(CRITERIA), num_grades))
        # Set by the trainer on a CPU (core.concurrent_sides): both sides' networks at once. Not a weight and
        # not part of config(): an export reads its cards one side after the other.
        self.side_threads: SideThreads | None = None

    def forward(self, back: Tensor, front: Tensor | None = None, back_crops: Tensor | None = None,
                front_crops: Tensor | None = None) -> dict[str, Tensor]:
        shifts = {"grade_prior_shift": self.grade_prior_shift, "criteria_prior_shift": self.criteria_prior_shift}
        if front is None:
            b = self.back(back, back_crops)
            return {**b, "centering": torch.cat([b["centering"], b["centering"]], dim=1),
                    "center_valid": self._valid_back_only, **shifts}
        if self.side_threads is None:
            b, f = self.back(back, back_crops), self.front(front, front_crops)
        else:  # the two sides' networks at once; dropout and heads after, back first, as above
            fb, ff = both_sides(self.side_threads, lambda: self.back.features(back, back_crops),
                                lambda: self.front.features(front, front_crops))
            b, f = self.back.heads(fb, back, back_crops), self.front.heads(ff, front, front_crops)
        lam = self.lambda_fusion
        out = {key: lam * b[key] + (1.0 - lam) * f[key] for key in ("logits", "edge", "criteria") if key in b}
        if self.measure_centering:
            out["centering_measured"] = True
        return {**out, "centering": torch.cat([f["centering"], b["centering"]], dim=1),
                "center_valid": self._valid_dual, **shifts}

    def set_prior_shift(self, grade: Tensor, criteria: Tensor) -> None:
        """Set the shifts the grade rule adds to the grade logits [num_grades] and the sub-grade logits
        [4, num_grades] when it reads them (core.sampling.sampler_prior_shift)."""
        self.grade_prior_shift.copy_(grade)
        self.criteria_prior_shift.copy_(criteria)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints and exports made before the prior shift have none: they were read without one.
        for name in ("grade_prior_shift", "criteria_prior_shift"):
            state_dict.setdefault(prefix + name, torch.zeros_like(getattr(self, name)))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this architecture (weights come from the state dict). "detail"
        (with "detail_kind"), "edge_crops", "measure_centering" and "crop_pool" are written only when not their
        old default, so checkpoints made before them still match a preset without them (a model with crops
        now pools them "avgmax", so its config names it; one from before, without the key, reads "avg")."""
        return {"backbone": self.backbone_name, "lambda_fusion": self.lambda_fusion,
                "dropout": self.dropout_p, "num_grades": self.num_grades, "criteria": self.criteria,
                "crop_size": self.crop_size, "crop_fraction": self.crop_fraction,
                **({"detail": True, "detail_kind": self.detail_kind} if self.detail else {}),
                **({"edge_crops": self.edge_crops} if self.edge_crops != 1 else {}),
                **({"measure_centering": True} if self.measure_centering else {}),
                **({"crop_pool": self.crop_pool} if self.crop_size > 0 and self.crop_pool != LEGACY_CROP_POOL else {})}

    @classmethod
    def from_config(cls, d: dict) -> "DualBranchGrader":
        """Rebuild from `config()` output; other keys (e.g. image size in an export file) are ignored."""
        if "backbone" not in d:
            raise ValueError("model config: missing key 'backbone'")
        return cls(backbone=d["backbone"], lambda_fusion=d.get("lambda_fusion", 0.7),
                   dropout=d.get("dropout", 0.2), num_grades=d.get("num_grades", 10),
                   criteria=d.get("criteria", False),  # exports from before criterion heads have none
                   crop_size=d.get("crop_size", 0), crop_fraction=d.get("crop_fraction", 0.24),
                   detail=d.get("detail", False), edge_crops=d.get("edge_crops", 1),
                   measure_centering=d.get("measure_centering", False),
                   detail_kind=d.get("detail_kind", LEGACY_DETAIL_KIND),
                   crop_pool=d.get("crop_pool", LEGACY_CROP_POOL))

    def init_from_phase1(self, phase1_state_dict: dict[str, Tensor]) -> None:
        """Start phase 2: load phase 1's back branch (backbone and heads) and copy its backbone into the front.

        The front heads keep their fresh initialisation: the back's heads were fitted to back images, and
        small random front logits perturb the fused prediction less than confident ones from a head that
        never saw a front. Accepts a full model state dict or just its "back." entries, with or without
        the "module." (DDP) / "_orig_mod." (torch.compile) prefixes.
        """
        back = {}
        for key, value in phase1_state_dict.items():
            for prefix in ("module.", "_orig_mod."):
                key = key.removeprefix(prefix)
            if key.startswith("back."):
                back[key.removeprefix("back.")] = value
        own = self.back.state_dict()
        problems = ([f"missing {k}" for k in own if k not in back]
                    + [f"unexpected {k}" for k in back if k not in own]
                    + [f"wrong shape {k}" for k in back if k in own and back[k].shape != own[k].shape])
        if problems:
            raise ValueError(f"phase 1 state dict does not match a {self.backbone_name} back branch with "
                             f"{self.num_grades} grades ({', '.join(problems[:3])})")
        self.back.load_state_dict(back)
        self.front.backbone.load_state_dict(self.back.backbone.state_dict())
        if self.front.crop_encoder is not None:
            self.front.crop_encoder.load_state_dict(self.back.crop_encoder.state_dict())
        if self.front.border_reader is not None:  # borders look alike on both sides: a better start than random
            self.front.border_reader.load_state_dict(self.back.border_reader.state_dict())


def build_model(cfg, device: torch.device, crop_size: int = 0, crop_fraction: float = 0.24,
                detail: bool = False, edge_crops: int = 1, detail_kind: str = "lines") -> DualBranchGrader:
    """The grader the preset's [model] table describes (crops and the detail channel as its [data] table
    sets them), on `device`. A weights file that is missing or does not fit, or settings that do not go
    together, are a one-line ConfigError."""
    try:
        model = DualBranchGrader(cfg.backbone, cfg.weights, cfg.lambda_fusion, cfg.dropout, criteria=cfg.criteria,
                                 crop_size=crop_size, crop_fraction=crop_fraction, detail=detail,
                                 edge_crops=edge_crops, measure_centering=cfg.measure_centering,
                                 detail_kind=detail_kind).to(device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, batches, to_inputs, autocast) -> None:
    """Set every BatchNorm's running statistics to the plain average over `batches` for the current
    weights ("precise BN"), instead of the exponential average over the last training batches.

    Why: evaluation uses the running statistics, and those were gathered on augmented images while the
    weights kept moving; at the local preset's learning rate that mismatch swung val QWK by 0.3-0.4 from
    one epoch to the next (docs/design.md §10). Only BatchNorm layers are in training mode here (dropout
    stays off), no gradients, no augmentation and no global RNG use: a resumed run recomputes the same.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    was_training = model.training
    model.eval()
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch seen
        m.train()
    for batch in batches:
        with autocast():
            model(**to_inputs(batch))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)
