"""Look at image files once: do they exist, do they decode, how big are they, what is their content hash.

`core.splits` uses this to check a user's scans before training. Each image is read through
core.storage (local or gs://) and fully decoded with PIL, because a truncated JPEG passes a stat and
even `Image.open` (which reads only the header), then fails mid-epoch.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Iterable

from PIL import Image, ImageStat

from core import storage
from core.parallel import ordered_map

# Below this many pixels on the short side a card scan shows no corner or edge detail worth learning.
MIN_SIDE = 64
# Grey-level standard deviation of a thumbnail below which a scan is "near empty" (a blank page, a
# black frame): real cards, even plain backs, have print and border contrast well above this.
BLANK_STD = 2.0
# Cards are 2.5 x 3.5 in (5:7). A scan may be portrait or landscape, so the test is on long/short side.
CARD_ASPECT = 7 / 5
ASPECT_TOLERANCE = 2.0  # flag long/short more than this factor away from 7:5


@dataclass(frozen=True)
class ImageInfo:
    path: str
    missing: bool = False
    error: str | None = None  # why it could not be read or decoded
    width: int = 0
    height: int = 0
    sha256: str = ""
    grey_std: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.missing and self.error is None

    @property
    def tiny(self) -> bool:
        return self.ok and min(self.width, self.height) < MIN_SIDE

    @property
    def blank(self) -> bool:
        return self.ok and self.grey_std < BLANK_STD

    @property
    def aspect(self) -> float:
        """Long side over short side (>= 1), so portrait and landscape scans compare alike."""
        return max(self.width, self.height) / max(1, min(self.width, self.height))

    @property
    def off_aspect(self) -> bool:
        return self.ok and not (CARD_ASPECT / ASPECT_TOLERANCE <= self.aspect <= CARD_ASPECT * ASPECT_TOLERANCE)


def probe_image(path: str) -> ImageInfo:
    try:
        data = storage.read_bytes(path)
    except storage.StorageError as exc:
        if not storage.exists(path):
            return ImageInfo(path=path, missing=True)
        return ImageInfo(path=path, error=str(exc))
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # full decode: catches truncated and corrupt files
            width, height = img.size
            thumb = img.convert("L")
            thumb.thumbnail((64, 64))
            std = ImageStat.Stat(thumb).stddev[0]
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError...) for bad files
        return ImageInfo(path=path, error=f"cannot decode: {exc}", sha256=digest)
    return ImageInfo(path=path, width=width, height=height, sha256=digest, grey_std=float(std))


def probe_images(paths: Iterable[str], workers: int | None = None) -> dict[str, ImageInfo]:
    """Probe each distinct path once. PIL releases the GIL while decoding, so threads use all cores."""
    unique = list(dict.fromkeys(paths))
    return dict(zip(unique, ordered_map(probe_image, unique, workers)))
