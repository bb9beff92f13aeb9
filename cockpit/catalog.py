"""The machine/accelerator/price catalog (cockpit/data/catalog.toml): typed, queried, and the one place
that says whether a Vertex AI machine + GPU + count + region combination is valid.

A user's own copy wins: the file named by env PSA_CATALOG, else ~/.config/psa-cockpit/catalog.toml.
"""
from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.errors import CockpitError

PACKAGED_CATALOG = Path(__file__).resolve().parent / "data" / "catalog.toml"
USER_CATALOG = Path("~/.config/psa-cockpit/catalog.toml")


@dataclass(frozen=True)
class Accelerator:
    name: str                # Vertex AI enum, e.g. NVIDIA_TESLA_T4
    label: str               # short display name, e.g. T4
    memory_gb: float
    on_demand: float         # USD/hour per GPU, us-central1
    spot: float
    speed_vs_t4: float
    regions: tuple[str, ...]
    note: str = ""
    compute_capability: float = 0.0  # CUDA compute capability, e.g. 7.5 for a T4; 0 = not stated


@dataclass(frozen=True)
class MachineType:
    name: str
    vcpus: int
    memory_gb: float
    on_demand: float         # USD/hour for the host (vCPUs + memory), us-central1
    spot: float
    cpu_only: bool           # may run without any accelerator
    accelerators: dict[str, tuple[int, ...]]  # accelerator name -> allowed counts
    note: str = ""


@dataclass(frozen=True)
class SpeedFactors:
    cpu_to_t4: float
    multi_gpu_efficiency: float
    cloud_vcpu_vs_local_core: float
    eval_cost: float
    startup_minutes: float
    reference_size: tuple[int, int]
    t4_samples_per_s: dict[str, float]


@dataclass
class Catalog:
    source: str
    date: str
    path: Path
    vertex_surcharge: float
    regions: dict[str, float]           # region -> price multiplier vs us-central1
    accelerators: dict[str, Accelerator]
    machines: dict[str, MachineType]
    speed: SpeedFactors
    region_notes: dict[str, str] = field(default_factory=dict)
    min_compute_capability: float = 0.0  # the training image's oldest supported GPU ([image]); 0 = any
    storage_gb_month: float = 0.0        # Cloud Storage Standard, USD per GB-month in us-central1

    # -- queries --------------------------------------------------------------------------------------

    def machine_types(self, region: str | None = None) -> list[str]:
        """Machine type names (catalog order); only those offered in `region` when given."""
        if region is None:
            return list(self.machines)
        self.check_region(region)
        return [m.name for m in self.machines.values()
                if m.cpu_only or any(region in self.accelerators[a].regions and self.image_runs_on(a)
                                     for a in m.accelerators)]

    def accelerators_for(self, machine_type: str, region: str | None = None) -> list[str]:
        """Accelerators the machine takes and the training image runs on (and that `region` offers, when
        given)."""
        machine = self.machine(machine_type)
        names = [a for a in machine.accelerators if self.image_runs_on(a)]
        if region is not None:
            self.check_region(region)
            names = [a for a in names if region in self.accelerators[a].regions]
        return names

    def allowed_counts(self, machine_type: str, accelerator: str) -> tuple[int, ...]:
        """GPU counts per replica the machine allows with that accelerator; (0,) for CPU-only."""
        machine = self.machine(machine_type)
        if not accelerator:
            return (0,) if machine.cpu_only else ()
        self.accelerator(accelerator)
        return machine.accelerators.get(accelerator, ())

    def choices(self, region: str) -> list[tuple[str, str, int]]:
        """Every valid (machine, accelerator or "", GPU count) in `region`, catalog order: the one rule
        of what a user may pick (the form's selects and the Cost section's table both follow it)."""
        out = []
        for machine in self.machine_types(region):
            options = ([""] if self.machine(machine).cpu_only else []) + self.accelerators_for(machine, region)
            for accelerator in options:
                out += [(machine, accelerator, count) for count in self.allowed_counts(machine, accelerator)]
        return out

    def image_runs_on(self, accelerator: str) -> bool:
        """Whether the training image has CUDA kernels for this GPU (its compute capability is at least
        the image's minimum; a GPU without a stated capability is assumed to run)."""
        cc = self.accelerator(accelerator).compute_capability
        return not cc or cc >= self.min_compute_capability

    def hourly_price(self, machine_type: str, accelerator: str, count: int, region: str,
                     spot: bool = False) -> float:
        """USD per hour for ONE replica: (host + count x GPU) x region multiplier x Vertex surcharge."""
        machine = self.machine(machine_type)
        host = machine.spot if spot else machine.on_demand
        gpu = 0.0
        if accelerator and count:
            acc = self.accelerator(accelerator)
            gpu = (acc.spot if spot else acc.on_demand) * count
        return (host + gpu) * self.check_region(region) * self.vertex_surcharge

    # -- lookups with did-you-mean -------------------------------------------------------------------

    def machine(self, name: str, where: str = "cloud.machine_type") -> MachineType:
        if name not in self.machines:
            raise CockpitError(f"{where} = {name!r} is not a known machine type"
                               f"{_did_you_mean(name, self.machines)}{self._which()}")
        return self.machines[name]

    def accelerator(self, name: str, where: str = "cloud.accelerator_type") -> Accelerator:
        if name not in self.accelerators:
            raise CockpitError(f"{where} = {name!r} is not a known accelerator"
                               f"{_did_you_mean(name, self.accelerators)}{self._which()}")
        return self.accelerators[name]

    def _which(self) -> str:
        # Name the catalog only when it is a user's copy: that is where a missing entry would be.
        return "" if self.path == PACKAGED_CATALOG else f" (catalog: {self.path})"

    def check_region(self, region: str, where: str = "cloud.region") -> float:
        """The region's price multiplier; CockpitError for a region the catalog does not know."""
        if region not in self.regions:
            raise CockpitError(f"{where} = {region!r} is not a known region{_did_you_mean(region, self.regions)}"
                               f" (known: {', '.join(self.regions)})")
        return self.regions[region]

    def validate_combo(self, machine_type: str, accelerator: str, count: int, region: str,
                       where: str = "") -> None:
        """Raise CockpitError (one line, prefixed by `where: ` when given) unless the combination runs."""
        prefix = f"{where}: " if where else ""
        try:
            self._validate_combo(machine_type, accelerator, count, region)
        except CockpitError as exc:
            raise CockpitError(prefix + str(exc), exc.exit_code) from None

    def _validate_combo(self, machine_type: str, accelerator: str, count: int, region: str) -> None:
        self.check_region(region)
        machine = self.machine(machine_type)
        if not accelerator:
            if not machine.cpu_only:
                needs = ", ".join(f"{a} x {'/'.join(map(str, c))}" for a, c in machine.accelerators.items())
                raise CockpitError(f"cloud.machine_type = {machine_type!r} needs an accelerator ({needs})")
            if count != 0:
                raise CockpitError(f"cloud.accelerator_count = {count} must be 0 when "
                                   f"cloud.accelerator_type is empty (CPU only)")
            return
        acc = self.accelerator(accelerator)
        if not self.image_runs_on(accelerator):
            runs = [a.name for a in self.accelerators.values() if self.image_runs_on(a.name)][:3]
            raise CockpitError(f"cloud.accelerator_type = {accelerator!r} cannot run the training image: "
                               f"compute capability {acc.compute_capability:.1f}, its PyTorch + CUDA build "
                               f"needs {self.min_compute_capability:.1f} or newer (e.g. {', '.join(runs)})")
        if accelerator not in machine.accelerators:
            takes = ", ".join(machine.accelerators) or "none (CPU only)"
            fits = [m.name for m in self.machines.values() if accelerator in m.accelerators]
            raise CockpitError(f"cloud.accelerator_type = {accelerator!r} does not fit machine "
                               f"{machine_type!r} (it takes: {takes}; {acc.label} runs on: "
                               f"{_families(fits)})")
        allowed = machine.accelerators[accelerator]
        if count not in allowed:
            raise CockpitError(f"cloud.accelerator_count = {count} is not allowed for {machine_type} with "
                               f"{accelerator} (allowed: {', '.join(map(str, allowed))})")
        if region not in acc.regions:
            raise CockpitError(f"cloud.accelerator_type = {accelerator!r} is not offered in region "
                               f"{region!r} (available in: {', '.join(acc.regions)})")


def _did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _families(machines: list[str]) -> str:
    """['g2-standard-4', 'g2-standard-8', ...] -> 'g2-standard-*' (short, for one-line messages)."""
    fams: list[str] = []
    for name in machines:
        fam = name.rsplit("-", 1)[0] + "-*"
        if fam not in fams:
            fams.append(fam)
    return ", ".join(fams)


# ---------------------------------------------------------------------------------------------------------
# Loading


def catalog_path(path: str | os.PathLike | None = None) -> Path:
    """Which catalog file is used: the argument, env PSA_CATALOG, the user's copy, or the packaged one."""
    if path:
        return Path(path)
    if os.environ.get("PSA_CATALOG"):
        return Path(os.environ["PSA_CATALOG"])
    user = USER_CATALOG.expanduser()
    return user if user.is_file() else PACKAGED_CATALOG


def load_catalog(path: str | os.PathLike | None = None) -> Catalog:
    """Read and check the catalog; a malformed file raises CockpitError naming the file and entry."""
    p = catalog_path(path)
    try:
        with open(p, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CockpitError(f"{p}: catalog is not valid TOML: {exc}") from None
    except OSError as exc:
        raise CockpitError(f"{p}: cannot read the catalog: {exc.strerror}") from None
    try:
        return _build(raw, p)
    except (KeyError, TypeError, ValueError) as exc:
        raise CockpitError(f"{p}: malformed catalog entry: {exc}") from None


def _num(entry: dict, key: str, where: str) -> float:
    v = entry[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise ValueError(f"{where}.{key} = {v!r} must be a non-negative number")
    return float(v)


def _build(raw: dict[str, Any], path: Path) -> Catalog:
    meta = raw.get("meta", {})
    regions = {name: _num(r, "price_multiplier", f"regions.{name}") for name, r in raw["regions"].items()}
    accelerators = {}
    for name, a in raw["accelerators"].items():
        w = f"accelerators.{name}"
        unknown = [r for r in a["regions"] if r not in regions]
        if unknown:
            raise ValueError(f"{w}.regions names unknown region {unknown[0]!r}")
        accelerators[name] = Accelerator(name, a.get("label", name), _num(a, "memory_gb", w),
                                         _num(a, "on_demand", w), _num(a, "spot", w),
                                         _num(a, "speed_vs_t4", w), tuple(a["regions"]), a.get("note", ""),
                                         _num(a, "compute_capability", w) if "compute_capability" in a else 0.0)
    machines = {}
    for name, m in raw["machines"].items():
        w = f"machines.{name}"
        accs = {}
        for acc, counts in m.get("accelerators", {}).items():
            if acc not in accelerators:
                raise ValueError(f"{w}.accelerators names unknown accelerator {acc!r}")
            accs[acc] = tuple(int(c) for c in counts)
        machines[name] = MachineType(name, int(m["vcpus"]), _num(m, "memory_gb", w), _num(m, "on_demand", w),
                                     _num(m, "spot", w), bool(m.get("cpu_only", False)), accs,
                                     m.get("note", ""))
    s = raw["speed"]
    speed = SpeedFactors(_num(s, "cpu_to_t4", "speed"), _num(s, "multi_gpu_efficiency", "speed"),
                         _num(s, "cloud_vcpu_vs_local_core", "speed"), _num(s, "eval_cost", "speed"),
                         _num(s, "startup_minutes", "speed"),
                         tuple(int(v) for v in s["reference_size"]),
                         {k: float(v) for k, v in s["t4_samples_per_s"].items()})
    image, storage = raw.get("image", {}), raw.get("storage", {})
    return Catalog(source=str(meta.get("source", "")), date=str(meta.get("date", "")), path=path,
                   vertex_surcharge=float(meta.get("vertex_surcharge", 1.0)), regions=regions,
                   accelerators=accelerators, machines=machines, speed=speed,
                   region_notes={n: r.get("note", "") for n, r in raw["regions"].items()},
                   min_compute_capability=_num(image, "min_compute_capability", "image")
                   if "min_compute_capability" in image else 0.0,
                   storage_gb_month=_num(storage, "standard_gb_month", "storage")
                   if "standard_gb_month" in storage else 0.0)
