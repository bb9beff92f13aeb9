"""The detail map: a fourth input channel (a fourth and fifth for "lines_creases") that keeps a scan's thin
bright lines visible after the resize.

Why: a surface scratch or a print line is a line about one pixel wide at the scan's resolution, drawn at
half opacity or less (docs/design.md §12). Resized to the model's whole-card view (72x96 from 200x280 in
the local preset) it averages into its neighbours and all but disappears: every model trained on the view
alone called every surface a 10 (docs/design.md §12). The map is found before the resize, where the line is
still sharp. Two kinds (`data.detail_kind`):

"tophat", every thin bright mark:
1. whiteness: the darkest of the three channels. A scratch or a print line adds white light to every
   channel; ink features (dark text, coloured strokes) do not raise it.
2. white top-hat: whiteness minus its 3x3 median. A median removes bright structures thinner than two
   pixels and keeps edges and flat areas, so what remains is thin bright lines and specks.
3. max-pooled to the view, not averaged: a line keeps its strength at any scale. The letterbox geometry is
   the same as core.data.load_card_image's (PIL's ImageOps.pad), so the map lies exactly on the view.

"lines", long straight lines at a slant (the default): the top-hat of steps 1-2 also keeps the print's
own thin bright marks, the 1-px gaps between words and the outlines of frames and boxes, and on a clean
card they are as strong as a scratch (a card's strongest top-hat pixel told a surface 8 from a 10 no
better than chance: AUC 0.54 on 500 generated fronts). A scratch differs from them in two ways a grader
also uses: it is long (30 px and more at 200x280), and it runs at any angle while the print is laid out
along the card's axes. So the top-hat, max-pooled 2x2, is averaged along straight 19 px segments (38 px
of the scan) in 18 directions at least 15 degrees off both axes, and each pixel keeps its strongest
direction; that is then max-pooled to the view as in step 3. Its strongest pixel tells a surface 8 from a
10 with AUC 0.85 on the same fronts (docs/design.md §12). Print lines, which the generator draws along an
axis, are left to the colour channels.

"lines_creases", the slanted lines and, as a second channel, creases. A crease's highlight is a bright line
2-3 px wide, which a 3x3 median keeps (most of its 3x3 neighbourhood lies on the line), so the top-hat of
steps 1-2 barely shows it: a folded corner lit the "lines" map no more than a clean card does (AUC 0.70 by
the strongest pixel, 600 unseen cards), and models read folded corners, which cap a card at 5, as 9s and
10s (docs/design.md §12). The crease channel is the whiteness minus its 3x3 grey opening (which removes
bright structures narrower than 3 px), less the median top-hat (what is left is bright lines about 2 px
wide), max-pooled 4x4 and averaged along 21-px segments (84 px of the scan: a crease runs a third of the
card or more) in the same slanted directions, times CREASE_GAIN. Its strongest pixel tells a folded corner
from a clean card with AUC 0.998. A channel of its own rather than merged into the lines map (the larger of
the two at each pixel): merged, the print's own 2-px marks that survive the opening cloud the scratches
(their AUC 0.86 -> 0.83), while the separate channel leaves the lines map exactly as it was.

The result is uint8 (x DETAIL_GAIN, clipped): it travels in the same uint8 cache as the view, as its
fourth channel (and fifth), and the model reads it as [0, 1] (core.data.normalize_on_device).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core.config import DETAIL_KINDS  # what `data.detail_kind` may name

# A line that clears its median by 64 grey levels (a half-opacity white scratch on a mid-tone print) is
# full scale; faint JPEG ringing (a few levels) stays near 0.
DETAIL_GAIN = 4
# "lines": segment length in pixels of the 2x2-pooled top-hat, directions over 180 degrees, and how many of
# them (7.5 degrees each) either side of an axis are left out.
LINE_LENGTH, LINE_DIRECTIONS, AXIS_EXCLUSION = 19, 24, 2
# "lines_creases": the crease channel's pooling, segment length and gain (a folded corner's strongest pixel
# averages about 107 grey levels before the gain, a clean card's print about 38).
CREASE_POOL, CREASE_LENGTH, CREASE_GAIN = 4, 21, 2


def letterbox_box(image_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x, y, width, height) of a (w, h) image letterboxed into `size` = (W, H), exactly as PIL's
    ImageOps.pad places it (contain's rounding, then the centred paste)."""
    (w, h), (tw, th) = image_size, size
    rw, rh = tw, th
    if w / h != tw / th:
        if w / h > tw / th:
            rh = round(h / w * tw)
        else:
            rw = round(w / h * th)
    return round((tw - rw) * 0.5), round((th - rh) * 0.5), rw, rh


# Devillard's 19-exchange sorting network for the median of 9 (N. Devillard, "Fast median search: an ANSI C
# implementation", 1998, opt_med9): after these compare-exchanges, element 4 is the median.
_MEDIAN9_EXCHANGES = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8),
                      (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median3x3(gray: np.ndarray) -> np.ndarray:
    """3x3 median of a uint8 HxW array, borders repeated: the same values as PIL's MedianFilter(3) (a test
    checks), about 20x faster on a 200x280 scan (benchmarks/bench_prepare.py), because every pixel goes
    through the same 19 vectorised min/max steps instead of a per-pixel sort. Building the detail map was
    most of the cache's build time."""
    h, w = gray.shape
    padded = np.pad(gray, 1, mode="edge")
    v = [padded[i:i + h, j:j + w] for i in range(3) for j in range(3)]
    for a, b in _MEDIAN9_EXCHANGES:
        v[a], v[b] = np.minimum(v[a], v[b]), np.maximum(v[a], v[b])
    return v[4]


def _segment_kernels(length: int, directions: int, axis_exclusion: int) -> torch.Tensor:
    """[D, 1, length, length] averaging kernels: one straight segment through the centre per direction kept
    (angle k x 180 / directions degrees, k at least `axis_exclusion` steps from 0 and 90 degrees)."""
    centre, quarter = (length - 1) / 2, directions // 2
    kernels = []
    for k in range(directions):
        if min(k % quarter, quarter - k % quarter) < axis_exclusion:
            continue
        angle = math.pi * k / directions
        t = np.linspace(-centre, centre, 4 * length)  # dense enough to touch every pixel the segment crosses
        kernel = torch.zeros(length, length)
        rows, cols = np.rint(centre + t * math.sin(angle)), np.rint(centre + t * math.cos(angle))
        kernel[rows.astype(int), cols.astype(int)] = 1
        kernels.append(kernel / kernel.sum())
    return torch.stack(kernels)[:, None]


_SEGMENTS = _segment_kernels(LINE_LENGTH, LINE_DIRECTIONS, AXIS_EXCLUSION)
_CREASE_SEGMENTS = _segment_kernels(CREASE_LENGTH, LINE_DIRECTIONS, AXIS_EXCLUSION)


def slanted_lines(tophat: torch.Tensor) -> torch.Tensor:
    """[1, 1, H', W'] from a [1, 1, H, W] top-hat: the mean along the strongest slanted segment through each
    pixel of its 2x2 max-pool (H' = ceil(H / 2))."""
    pooled = F.max_pool2d(tophat, 2, ceil_mode=True)
    return F.conv2d(pooled, _SEGMENTS, padding=LINE_LENGTH // 2).amax(1, keepdim=True)


def detail_channels(kind: str) -> int:
    """How many channels a detail map of this kind adds to the whole-card view."""
    return 2 if kind == "lines_creases" else 1


def opening3x3(gray: np.ndarray) -> np.ndarray:
    """3x3 grey opening (erode, then dilate; borders repeated, which for a min or max is the same as leaving
    them out) of a uint8 HxW array: it removes bright structures narrower than 3 px. Minima and maxima of
    shifted copies, rows then columns: torch's stride-1 max_pool2d took 3 ms of a 200x280 scan, more than
    the rest of the crease channel together. A test checks it against PIL's MinFilter(3) then
    MaxFilter(3)."""
    return _rank3x3(_rank3x3(gray, np.minimum), np.maximum)


def _rank3x3(gray: np.ndarray, pick) -> np.ndarray:
    """pick (np.minimum or np.maximum) over each pixel's 3x3 neighbourhood, rows then columns."""
    padded = np.pad(gray, 1, mode="edge")
    rows = pick(pick(padded[:-2], padded[1:-1]), padded[2:])
    return pick(pick(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def crease_lines(whiteness: np.ndarray, tophat: torch.Tensor) -> torch.Tensor:
    """[1, 1, H', W'] (H' = ceil(H / CREASE_POOL)) from the uint8 HxW whiteness and its [1, 1, H, W] median
    top-hat: the mean along the strongest long slanted segment of the bright lines about 2 px wide."""
    bright = (whiteness.astype(np.int16) - opening3x3(whiteness).astype(np.int16)).astype(np.float32)
    wide = (torch.from_numpy(bright)[None, None] - tophat).clamp_min(0)
    pooled = F.max_pool2d(wide, CREASE_POOL, ceil_mode=True)
    return F.conv2d(pooled, _CREASE_SEGMENTS, padding=CREASE_LENGTH // 2).amax(1, keepdim=True)


def _to_view(lines: torch.Tensor, im_size: tuple[int, int], size: tuple[int, int], gain: float) -> np.ndarray:
    """uint8 HxW: a [1, 1, h, w] map of the scan max-pooled into the letterboxed view (step 3), x gain."""
    x, y, rw, rh = letterbox_box(im_size, size)
    out = np.zeros((size[1], size[0]), dtype=np.uint8)
    if rw > 0 and rh > 0:
        pooled = F.adaptive_max_pool2d(lines, (rh, rw))[0, 0].numpy()
        out[y:y + rh, x:x + rw] = np.clip(pooled * gain, 0, 255).astype(np.uint8)
    return out


def detail_map(im: Image.Image, size: tuple[int, int], kind: str = "lines") -> np.ndarray:
    """uint8 map of kind `kind` (DETAIL_KINDS) of the decoded RGB scan `im`, letterboxed to `size` = (W, H)
    like the view: HxW, or HxWx2 for "lines_creases" (detail_channels)."""
    if kind not in DETAIL_KINDS:
        raise ValueError(f"detail map kind {kind!r}: expected one of {', '.join(DETAIL_KINDS)}")
    rgb = np.asarray(im, dtype=np.uint8)
    whiteness = np.minimum(np.minimum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
    tophat = whiteness.astype(np.int16) - median3x3(whiteness).astype(np.int16)
    tophat = torch.from_numpy(np.clip(tophat, 0, None).astype(np.float32))[None, None]
    lines = _to_view(tophat if kind == "tophat" else slanted_lines(tophat), im.size, size, DETAIL_GAIN)
    if kind != "lines_creases":
        return lines
    creases = crease_lines(whiteness, tophat)
    return np.dstack([lines, _to_view(creases, im.size, size, CREASE_GAIN)])
