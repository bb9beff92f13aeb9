"""Card images -> uint8 tensors, with an optional pre-resized cache so epochs after the first decode nothing.

Workers only read bytes and hand out uint8 tensors; normalisation and augmentation happen on the device
(core/augment.py), because on a 2-core machine JPEG decoding in workers takes the cores the model needs.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from core import distributed, sampling, storage
from core.augment import AugmentSeed, augment_batch, batch_generator
from core.config import LEGACY_DETAIL_KIND, ConfigError
from core.detail_map import detail_channels, detail_map
from core.events import ProgressBar
from core.parallel import ordered_map
from core.records import CardRecord, Splits, load_splits

BACKGROUND = (128, 128, 128)  # letterbox fill: a neutral grey, like a scanner lid


class ImageError(ValueError):
    """An image could not be decoded; the message names the file and the record id."""


# A 1200 dpi scan of a card is about 13 Mpx; anything far beyond is a mistake or a decompression bomb
# (a tiny file that decodes to gigabytes), refused before it is decoded (issue 12).
MAX_IMAGE_PIXELS = 64_000_000


def _open_rgb(path, record_id: str, cache_dir: str, use) -> np.ndarray:
    """Decode `path` (a path, gs:// or the encoded file's bytes), fix EXIF rotation, convert to RGB and
    return use(image); ImageError names the file and the record."""
    if isinstance(path, bytes):
        local, path = io.BytesIO(path), f"<{len(path)} bytes>"
    else:
        local = storage.local_copy(path, cache_dir or None) if storage.is_gcs(path) else path
    who = f" (record {record_id})" if record_id else ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # refuse, do not just warn
            im_file = Image.open(local)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}{who}: image too large to decode safely (over "
                         f"{Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ImageError(f"{path}{who}: cannot decode image: {exc}") from None
    try:
        with im_file as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:  # checked before anything is decoded
                raise ImageError(f"{path}{who}: {im.width}x{im.height} pixels is over the "
                                 f"{MAX_IMAGE_PIXELS:,}-pixel limit for a card scan")
            return use(ImageOps.exif_transpose(im).convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}{who}: cannot decode image: {exc}") from None


def shifted(im: Image.Image, shift: tuple[int, int]) -> Image.Image:
    """The scan moved by whole pixels, (dx, dy) = right and down, its outermost rows and columns repeated into
    the gap (the scanner bed around the card). A second read of a card (core/reads.py) sees its fine lines
    fall on other pixels of the view and of the detail map, as another scan of the same card would."""
    dx, dy = shift
    if not (dx or dy):
        return im
    a = np.asarray(im)
    h, w = a.shape[:2]
    padded = np.pad(a, ((max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0)), (0, 0)), mode="edge")
    return Image.fromarray(padded[max(-dy, 0):max(-dy, 0) + h, max(-dx, 0):max(-dx, 0) + w])


def load_card_image(path: str | bytes, size: tuple[int, int], record_id: str = "", cache_dir: str = "",
                    detail: str = "", shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Decode, fix EXIF rotation, letterbox to (W, H) keeping the card's aspect; -> uint8 HxWx3, or HxWx4
    with `detail` (a kind of core/detail_map.py, "" for none): the detail map, found on the scan before the
    resize, as a 4th channel (and a 5th for "lines_creases"). `shift` moves the scan first (`shifted`).

    `path` may also be the encoded file's bytes (an upload to core.serve): same decode, same letterbox.
    """
    return _open_rgb(path, record_id, cache_dir, lambda im: card_view(shifted(im, shift), size, detail))


def card_view(im: Image.Image, size: tuple[int, int], detail: str = "") -> np.ndarray:
    """The letterboxed whole-card view of a decoded scan, with its detail map channels (load_card_image)."""
    view = np.array(ImageOps.pad(im, size, method=Image.Resampling.BILINEAR, color=BACKGROUND),
                    dtype=np.uint8)  # writable (asarray's view of PIL's bytes is read-only)
    return np.dstack([view, detail_map(im, size, detail)]) if detail else view


def load_card_reads(path: str | bytes, size: tuple[int, int], shifts, detail: str = "",
                    crops: tuple | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One decode of the scan at `path` -> its views [R, H, W, C] and, with `crops` (fraction, size[, edge
    crops]), its crops [R, n, size, size, 3], one per shift (core/reads.py): what load_card_image and
    load_card_crops give for each shift, without decoding the file 2 x R times."""
    def cut(im: Image.Image):
        moved = [shifted(im, shift) for shift in shifts]
        views = np.stack([card_view(m, size, detail) for m in moved])
        return views, np.stack([crops_of(m, *crops) for m in moved]) if crops else None
    return _open_rgb(path, "", "", cut)


# Where the crops sit ((x, y) of the box as a share of the free space W - box, H - box) and how each is
# turned so the card's own corner is top-left and its outer edge is on top: one encoder then sees every
# corner (and every edge) the same way round. Turns are multiples of 90 degrees: exact, so the print
# never moves relative to the border.
_CORNER_PLACES = (  # top-left, top-right, bottom-right, bottom-left
    ((0, 0), None), ((1, 0), Image.Transpose.ROTATE_90), ((1, 1), Image.Transpose.ROTATE_180),
    ((0, 1), Image.Transpose.ROTATE_270))


def crop_places(edge_crops: int = 1) -> tuple:
    """The 4 corners, then `edge_crops` boxes along each edge (top, right, bottom, left), spread evenly
    between the corners: 1 is each edge's midpoint. An edge chip can sit anywhere along an edge
    (docs/design.md §2), and a midpoint box sees a fifth of a 280 px edge."""
    spots = [(j + 1) / (edge_crops + 1) for j in range(edge_crops)]
    edges = ([((t, 0), None) for t in spots] + [((1, t), Image.Transpose.ROTATE_90) for t in spots]
             + [((t, 1), Image.Transpose.ROTATE_180) for t in spots]
             + [((0, t), Image.Transpose.ROTATE_270) for t in spots])
    return _CORNER_PLACES + tuple(edges)


def crops_of(im: Image.Image, fraction: float, size: int, edge_crops: int = 1) -> np.ndarray:
    """The 4 corners and `edge_crops` boxes per edge of a decoded scan, before any resize: square boxes of
    `fraction` of its shorter side, resized to size x size (no resize when the box is that size already,
    i.e. native resolution); -> uint8 [4 + 4 * edge_crops, size, size, 3]."""
    w, h = im.size
    box = max(1, round(fraction * min(w, h)))
    places = crop_places(edge_crops)
    out = np.empty((len(places), size, size, 3), dtype=np.uint8)
    for i, ((fx, fy), turn) in enumerate(places):
        x, y = round(fx * (w - box)), round(fy * (h - box))
        crop = im.crop((x, y, x + box, y + box))
        crop = crop.transpose(turn) if turn is not None else crop
        if box != size:
            crop = crop.resize((size, size), Image.Resampling.BILINEAR)
        out[i] = np.asarray(crop, dtype=np.uint8)
    return out


def load_card_crops(path: str | bytes, fraction: float, size: int, edge_crops: int = 1, record_id: str = "",
                    cache_dir: str = "", shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """`crops_of` the decoded scan at `path`, moved by `shift` first (`shifted`); training, evaluation and
    prediction all cut crops here."""
    return _open_rgb(path, record_id, cache_dir,
                     lambda im: crops_of(shifted(im, shift), fraction, size, edge_crops))

def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True

def default_cache_dir() -> Path:
    return Path(os.environ.get("PSA_CACHE_DIR", Path.home() / ".cache" / "psa"))


def full_crop_settings(crops) -> tuple[float, int, int] | None:
    """(fraction, size) or (fraction, size, edge crops) -> the full triple (one crop per edge by default)."""
    return (*crops, 1)[:3] if crops else None


def _cache_key(records: list[CardRecord], size: tuple[int, int], sides: tuple[str, ...], crops=None,
               detail: str = "") -> str:
    """Changes when any image path, its size/mtime (local), the target size, the crop settings or the
    detail channel change. A "tophat" cache keeps the key it had before there were two kinds of map."""
    detail_key = ["detail"] if detail == LEGACY_DETAIL_KIND else [f"detail-{detail}"] if detail else []
    h = hashlib.sha256(json.dumps([list(size), list(sides)] + ([list(crops)] if crops else [])
                                  + detail_key).encode())
    for r in records:
        for side in sides:
            p = getattr(r, side)
            stamp = ""
            if not storage.is_gcs(p):
                try:
                    st = os.stat(p)
                    stamp = f"{st.st_size}:{st.st_mtime_ns}"
                except OSError:
                    stamp = "missing"
            h.update(f"{r.id}|{p}|{stamp}\n".encode())
    return h.hexdigest()[:24]


class UInt8Cache:
    """A memory-mapped .npy of shape [N, S, H, W, 3] (S sides; 4 or 5 channels with a `detail` map), built once
    and shared by workers; with `crops` = (fraction, size[, edge crops]) it holds each side's crops instead:
    [N, S, 4 + 4 x edge crops, size, size, 3].

    Built to a temp name and renamed when complete, so an interrupted build is never mistaken for a
    finished cache.
    """

    def __init__(self, records: list[CardRecord], size: tuple[int, int], sides: tuple[str, ...],
                 cache_dir: str = "", image_cache_dir: str = "", crops: tuple[float, int] | None = None,
                 detail: str = ""):
        self.records, self.size, self.sides, self.crops = records, size, sides, full_crop_settings(crops)
        self.detail = "" if crops else detail  # the detail map is a channel of the whole-card view only
        root = Path(cache_dir) if cache_dir else default_cache_dir()
        kind = "crops" if crops else "cards"
        self.path = root / f"{kind}-{_cache_key(records, size, sides, self.crops, self.detail)}.npy"
        self.image_cache_dir = image_cache_dir
        self.array: np.ndarray | None = None

    def ensure(self, progress=None) -> "UInt8Cache":
        if self.path.exists():
            self.array = np.load(self.path, mmap_mode="r")
            if self.array.shape == self.shape():
                return self
            # Same key, another layout: written by a version whose map of this kind had other channels.
            self.array = None
        self._build(progress)
        self.array = np.load(self.path, mmap_mode="r")
        return self

    def shape(self) -> tuple[int, ...]:
        """[N, S, H, W, C] of the whole-card views, or [N, S, crops, size, size, 3]."""
        w, h = self.size
        item = ((len(crop_places(self.crops[2])), self.crops[1], self.crops[1], 3) if self.crops else
                (h, w, 3 + detail_channels(self.detail) if self.detail else 3))
        return (len(self.records), len(self.sides), *item)

    def _build(self, progress) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_abandoned_temp_files()
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npy")
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=self.shape())
        def load(r: CardRecord) -> list[np.ndarray]:
            return [load_card_crops(getattr(r, side), *self.crops, record_id=r.id, cache_dir=self.image_cache_dir)
                    if self.crops else
                    load_card_image(getattr(r, side), self.size, r.id, self.image_cache_dir, self.detail)
                    for side in self.sides]
        try:
            for i, sides in enumerate(ordered_map(load, self.records)):
                for j, image in enumerate(sides):
                    arr[i, j] = image
                if progress:
                    progress(i + 1, len(self.records))
            arr.flush()
            del arr
            os.replace(tmp, self.path)
        except BaseException:  # a bad image, Ctrl-C: the half-built file (as big as the cache) goes too
            tmp.unlink(missing_ok=True)
            raise

    def _remove_abandoned_temp_files(self) -> None:
        """Temp files of builds whose process is gone (killed outright, so it could not clean up)."""
        for stale in self.path.parent.glob(f"{self.path.stem}.*.tmp.npy"):
            pid = stale.name[len(self.path.stem) + 1:].split(".", 1)[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                stale.unlink(missing_ok=True)

    def get(self, index: int) -> np.ndarray:
        return np.array(self.array[index])  # a writable copy: torch refuses read-only memmap views


class CardDataset(Dataset):
    """Yields uint8 CHW images plus labels. `sides` is ("back",) for phase 1 or ("front", "back")."""

    def __init__(self, records: list[CardRecord], size: tuple[int, int], sides: tuple[str, ...] = ("front", "back"),
                 cache: UInt8Cache | None = None, image_cache_dir: str = "", crops: tuple[float, int] | None = None,
                 crop_cache: UInt8Cache | None = None, detail: str = ""):
        self.records, self.size, self.sides, self.detail = records, size, sides, detail
        self.cache, self.crops, self.crop_cache = cache, full_crop_settings(crops), crop_cache
        self.image_cache_dir, self.shift = image_cache_dir, (0, 0)
        if cache is not None:
            missing = [s for s in sides if s not in cache.sides]
            if missing:
                raise ValueError(f"cache holds sides {cache.sides}, dataset needs {sides}")
            if cache.detail != detail:
                raise ValueError(f"cache holds detail map {cache.detail or 'none'}, the dataset reads "
                                 f"{detail or 'none'}")
            self._side_index = [cache.sides.index(s) for s in sides]

    def __len__(self) -> int:
        return len(self.records)

    def with_shift(self, shift: tuple[int, int]) -> "CardDataset":
        """The same cards with their scans moved by `shift` (`shifted`) before anything is cut from them, for
        another read of each card (core/reads.py). The caches hold the scans as they are, so a moved read
        decodes the files again."""
        if tuple(shift) == (0, 0):
            return self
        other = CardDataset(self.records, self.size, self.sides, None, self.image_cache_dir, self.crops, None,
                            self.detail)
        other.shift = tuple(shift)
        return other

    def __getitem__(self, index: int) -> dict:
        r = self.records[index]
        if self.cache is not None:
            row = self.cache.array[index]  # a view into the memmap: copy out only the sides asked for
            images = [np.array(row[j]) for j in self._side_index]
        else:
            images = [load_card_image(getattr(r, s), self.size, r.id, self.image_cache_dir, self.detail, self.shift)
                      for s in self.sides]
        item = {side: torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)
                for side, img in zip(self.sides, images)}
        if self.crops:  # [4 + 4 * edge crops, 3, size, size] per side, beside the whole-card view
            for side in self.sides:
                crops = (np.array(self.crop_cache.array[index][self.crop_cache.sides.index(side)])
                         if self.crop_cache is not None else
                         load_card_crops(getattr(r, side), *self.crops, record_id=r.id,
                                         cache_dir=self.image_cache_dir, shift=self.shift))
                item[f"{side}_crops"] = torch.from_numpy(crops).permute(0, 3, 1, 2)
        item.update(labels_of(r))
        item["index"] = index
        return item


def model_input_settings(model_config: dict) -> tuple[tuple[float, int, int] | None, str]:
    """(crops, detail map kind or "") a model was trained with, from its config (DualBranchGrader.config(),
    also in an export's JSON): what evaluation and prediction must cut and compute to feed it the same
    inputs. Models from before there were two kinds of map name none: they read the "tophat" map."""
    m = model_config
    crops = (m["crop_fraction"], m["crop_size"], m.get("edge_crops", 1)) if m.get("crop_size") else None
    return crops, (m.get("detail_kind", LEGACY_DETAIL_KIND) if m.get("detail") else "")


def detail_setting(cfg) -> str:
    """The detail map kind the preset's [data] table asks for, or "" when the channel is off."""
    return cfg.detail_kind if cfg.detail else ""


def crop_settings(cfg) -> tuple[float, int, int] | None:
    """(fraction, size, edge crops) of the preset's [data] crops, or None when crops are off."""
    return (cfg.crop_fraction, cfg.crop_size, cfg.edge_crops) if cfg.crop_size else None


def prepare_datasets(cfg, is_main: bool, emit) -> tuple[Splits, dict]:
    """The card set of `cfg` (the preset's [data] table), ready to train on.

    Generates the built-in synthetic set when it is missing or was made with other settings, reads and
    checks splits.json, fills the uint8 caches (rank 0 builds, the others wait), and returns
    (splits, {split: {sides: CardDataset}}) with sides ("back",) for phase 1 and ("front", "back").
    `emit(event, message)` reports what is being done.
    """
    stale = cfg.synthetic and synthetic_set_differs(cfg)
    if cfg.synthetic and (stale or not storage.exists(cfg.splits)):
        if storage.is_gcs(cfg.splits):
            raise ConfigError(f"data.splits = {cfg.splits!r}: synthetic data is generated locally only; "
                              f"point data.splits at a local path or upload the set")
        if is_main:
            from core.synth.dataset import SynthError, generate

            why = f" (the set there was made with other settings: {stale})" if stale else ""
            emit("info", f"generating {cfg.synthetic_n} synthetic cards in {Path(cfg.splits).parent} "
                         f"(seed {cfg.synthetic_seed}){why}")
            try:
                generate(Path(cfg.splits).parent, cfg.synthetic_n, cfg.synthetic_seed, size=tuple(cfg.synthetic_size))
            except SynthError as exc:  # e.g. a typo'd data.splits in a folder of real cards
                raise ConfigError(f"data.splits = {cfg.splits!r}: {exc}") from None
        distributed.barrier()
    splits = load_splits(cfg.splits)
    size, crops = tuple(cfg.image_size), crop_settings(cfg)
    datasets = {}
    for name in ("train", "val", "test"):
        records = splits.split(name)
        caches = []
        for view in ([None, crops] if crops else [None]) if cfg.cache else []:
            cache = UInt8Cache(records, size, ("front", "back"), cfg.cache_dir, cfg.cache_dir, crops=view,
                               detail=detail_setting(cfg))
            if is_main:
                bar = ProgressBar(len(records), f"caching {name}{' crops' if view else ''}")
                cache.ensure(lambda done, total: bar.update(done))
                bar.close()
            distributed.barrier()
            caches.append(cache.ensure())
        card_cache, crop_cache = (caches + [None, None])[:2]
        datasets[name] = {sides: CardDataset(records, size, sides, card_cache, cfg.cache_dir, crops, crop_cache,
                                             detail_setting(cfg))
                          for sides in (("back",), ("front", "back"))}
    return splits, datasets


def synthetic_set_differs(cfg) -> str:
    """Describe how an existing generated set differs from the preset ('' if it matches, is missing,
    or is not ours). Only sets the generator wrote (they carry a "synthetic" block) are ever replaced."""
    if storage.is_gcs(cfg.splits) or not os.path.isfile(cfg.splits):
        return ""
    try:
        made = json.loads(Path(cfg.splits).read_text(encoding="utf-8")).get("synthetic")
    except (OSError, ValueError, AttributeError):
        return ""
    if not isinstance(made, dict):
        return ""
    # Sets from before sub-grade labels (no "subgrades" key) are made again too.
    wanted = {"n": cfg.synthetic_n, "seed": cfg.synthetic_seed, "size": list(cfg.synthetic_size), "subgrades": True}
    return ", ".join(f"{k} {made.get(k)} vs {v}" for k, v in wanted.items() if made.get(k) != v)


def labels_of(r: CardRecord) -> dict:
    return {
        "grade": torch.tensor(r.grade - 1, dtype=torch.long),  # class index 0..9
        "edge": torch.tensor(r.edge if r.edge is not None else 0.0, dtype=torch.float32),
        "edge_mask": torch.tensor(r.edge is not None),
        "centering": torch.tensor(r.centering if r.centering is not None else (0.5,) * 4, dtype=torch.float32),
        "center_mask": torch.tensor(r.centering is not None),
        # Class index 0..9 per criterion (records.CRITERIA), -1 (masked) where not labelled.
        "subgrades": torch.tensor([-1 if v is None else v - 1 for v in (r.subgrades or (None,) * 4)]),
    }


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_NORM_CONSTANTS: dict[tuple[torch.device, torch.dtype, int], tuple[torch.Tensor, torch.Tensor]] = {}


def _norm_constants(device: torch.device, dtype: torch.dtype, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with x * scale + shift == (x / 255 - mean) / std, made once per device.

    A 4th (and 5th) channel (the detail map, core/detail_map.py) is read as x / 255: it is not a colour, so
    no ImageNet statistics apply, and [0, 1] keeps it on the colour channels' scale.
    Building them per call would copy from pageable host memory each step, and on CUDA such a copy
    waits for every kernel already queued: a hidden host sync per batch.
    """
    key = (device, dtype, channels)
    if key not in _NORM_CONSTANTS:
        mean = torch.tensor(IMAGENET_MEAN + (0.0,) * (channels - 3), dtype=torch.float64).view(1, channels, 1, 1)
        std = torch.tensor(IMAGENET_STD + (1.0,) * (channels - 3), dtype=torch.float64).view(1, channels, 1, 1)
        _NORM_CONSTANTS[key] = ((1.0 / (255.0 * std)).to(device, dtype), (-mean / std).to(device, dtype))
    return _NORM_CONSTANTS[key]


def normalize_on_device(images_u8: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 NCHW on the device (or float in [0, 255]) -> float normalised; the input is left untouched.

    The uint8 copy moved 4x fewer bytes than float32 would; the layout change happens on uint8 too (a
    quarter of the bytes), and the rest is one float conversion plus one fused multiply-add.
    """
    x = images_u8
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    scale, shift = _norm_constants(x.device, torch.float32, x.shape[1])
    if x.dtype == torch.float32:
        return torch.addcmul(shift, x, scale).contiguous(
            memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    x = x.float()  # a new tensor (uint8 in): safe to finish in place, keeping the layout chosen above
    return x.mul_(scale).add_(shift)


def model_inputs(batch: dict, sides, device: torch.device, channels_last: bool,
                 augment: AugmentSeed | None = None) -> dict:
    """A loader batch -> the model's keyword arguments: normalised float tensors per side on `device`,
    augmented first when `augment` seeds it (training only). Side i draws from seed + i."""
    out = {}
    for i, side in enumerate(sides):
        x = batch[side].to(device, non_blocking=True)
        if augment is not None:
            g = batch_generator(augment.seed + i, augment.phase, augment.epoch, augment.batch_index, device)
            x = augment_batch(x.float().div_(255.0), g).mul_(255.0)
        out[side] = normalize_on_device(x, channels_last)
        if f"{side}_crops" in batch:  # [B, n, 3, s, s] -> [B * n, 3, s, s], n crops per card in order
            crops = batch[f"{side}_crops"].to(device, non_blocking=True).flatten(0, 1)
            if augment is not None:  # colour jitter and blur only: never a turn or a shift of the print
                g = batch_generator(augment.seed + 100 + i, augment.phase, augment.epoch, augment.batch_index, device)
                crops = augment_batch(crops.float().div_(255.0), g, max_degrees=0.0).mul_(255.0)
            out[f"{side}_crops"] = normalize_on_device(crops, channels_last)
    return out


def make_loader(dataset: Dataset, sampler, cfg, batch_size: int, seed: int, device: torch.device,
                drop_last: bool) -> DataLoader:
    """A DataLoader over `dataset` in the order `sampler` gives, with the preset's [data] loader settings."""
    workers = cfg.num_workers
    # Its own generator: every new iterator draws a base seed, and from the global RNG that draw would
    # shift dropout's stream whenever a resumed run opens its loader mid-epoch (not bitwise then).
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, generator=generator,
                      pin_memory=cfg.pin_memory and device.type == "cuda", drop_last=drop_last,
                      persistent_workers=cfg.persistent_workers and workers > 0,
                      prefetch_factor=cfg.prefetch_factor if workers > 0 else None)


def train_loader(dataset: Dataset, order, cfg, device: torch.device) -> DataLoader:
    """A phase's training loader for a Config `cfg`: batches of training.batch_size in the order `order`
    (a sampling.EpochOrder the trainer sets each epoch), the last partial batch dropped."""
    return make_loader(dataset, order, cfg.data, cfg.training.batch_size, cfg.training.seed, device, drop_last=True)


class EvalLoaders:
    """Un-augmented loaders over this rank's shard of each split's datasets (prepare_datasets' dict:
    split -> sides -> dataset) for a Config `cfg`, built on first use and kept, so their persistent
    workers are not restarted every epoch."""

    def __init__(self, datasets: dict, cfg, device: torch.device, rank: int, world_size: int):
        self.datasets, self.cfg, self.device, self.rank, self.world_size = datasets, cfg, device, rank, world_size
        self.loaders: dict[tuple, DataLoader] = {}

    def __call__(self, split: str, sides, max_batches: int = 0, shift: tuple[int, int] = (0, 0)) -> DataLoader:
        """The whole shard in batches of training.eval_batch_size, or with `max_batches` that many
        training-size batches of a fixed shuffle (the clean batches BatchNorm statistics are recomputed
        on); with `shift`, the same cards in the same order with their scans moved (CardDataset.with_shift,
        for another read of each card). Kept per (split, sides, shift)."""
        key = (split, sides, tuple(shift))
        if key not in self.loaders:
            t, dataset = self.cfg.training, self.datasets[split][sides].with_shift(shift)
            indices = sampling.eval_indices(len(dataset), t.seed, self.rank, self.world_size,
                                            max_batches * t.batch_size)
            self.loaders[key] = make_loader(dataset, sampling.EpochOrder(indices), self.cfg.data,
                                            t.batch_size if max_batches else t.eval_batch_size, t.seed,
                                            self.device, drop_last=False)
        return self.loaders[key]
