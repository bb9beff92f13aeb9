"""Print the README's cost table (Markdown) from the cockpit's catalog, cockpit/data/catalog.toml.

One row per GPU type on the cheapest machine that takes it, with on-demand and spot prices and the
price of one "T4-hour" of work on it (price / speed relative to a T4), so GPUs compare by what the
work costs, not by the sticker. Always reads the packaged catalog (not a user's copy), so the README
shows what ships:

    python scripts/gen_cost_table.py                    # print the Markdown
    python scripts/gen_cost_table.py --write README.md  # replace the block between the markers
    python scripts/gen_cost_table.py --check README.md  # exit 1 if the README is stale
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (str(ROOT), str(ROOT / "scripts")):
    if p not in sys.path:
        sys.path.insert(0, p)

from cockpit.catalog import PACKAGED_CATALOG, load_catalog  # noqa: E402
from core.config import load_preset  # noqa: E402
from gen_presets_reference import main as _main  # noqa: E402

START = "<!-- cost-table:start -->"
END = "<!-- cost-table:end -->"
REGION = "us-central1"
MULTI_GPU = {"machine_type": "n1-highmem-16", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 4}


def _cheapest_setup(cat, acc_name: str) -> tuple[str, int] | None:
    """(machine, count) with the fewest GPUs, then the cheapest host, that takes this accelerator."""
    options = [(counts[0], m.on_demand, m.name) for m in cat.machines.values()
               for a, counts in m.accelerators.items() if a == acc_name and counts]
    if not options:
        return None
    count, _, machine = min(options)
    return machine, count


def render(catalog_file: Path = PACKAGED_CATALOG) -> str:
    cat = load_catalog(catalog_file)
    rows = ["| GPU | memory | machine | GPUs | on-demand $/h | spot $/h | speed vs T4 | "
            "$ per T4-hour (on-demand / spot) |",
            "|---|---|---|---|---|---|---|---|"]
    refused = []
    for acc in cat.accelerators.values():
        setup = _cheapest_setup(cat, acc.name)
        if not cat.image_runs_on(acc.name):
            refused.append(f"{acc.label} (compute capability {acc.compute_capability:.1f})")
            continue
        if setup is None:
            continue
        machine, count = setup
        on_demand = cat.hourly_price(machine, acc.name, count, REGION)
        spot = cat.hourly_price(machine, acc.name, count, REGION, spot=True)
        # The catalog's data-parallel rule: each GPU beyond the first adds multi_gpu_efficiency of one.
        work = acc.speed_vs_t4 * (1 + (count - 1) * cat.speed.multi_gpu_efficiency)
        rows.append(f"| {acc.label} | {acc.memory_gb:g} GB | `{machine}` | {count} | {on_demand:.2f} | "
                    f"{spot:.2f} | {work:.3g}x | {on_demand / work:.2f} / {spot / work:.2f} |")
    cloud = load_preset("cloud").cloud
    preset_on = cat.hourly_price(cloud.machine_type, cloud.accelerator_type, cloud.accelerator_count, REGION)
    preset_spot = cat.hourly_price(cloud.machine_type, cloud.accelerator_type, cloud.accelerator_count,
                                   REGION, spot=True)
    multi = load_preset("cloud", [f"cloud.{k}={v}" for k, v in MULTI_GPU.items()]).cloud
    multi_on = cat.hourly_price(multi.machine_type, multi.accelerator_type, multi.accelerator_count, REGION)
    multi_spot = cat.hourly_price(multi.machine_type, multi.accelerator_type, multi.accelerator_count, REGION,
                                  spot=True)
    surcharge = ("Compute Engine list prices (Vertex AI bills somewhat above them; set "
                 "`vertex_surcharge` in the catalog to include that)" if cat.vertex_surcharge == 1.0
                 else f"Compute Engine list prices x {cat.vertex_surcharge:g} for Vertex AI")
    notes = [
        "",
        f"USD per hour per replica in {REGION}, {surcharge}. Source: {cat.source}, {cat.date}. "
        "Other regions: the catalog's `price_multiplier`. Speeds are rough training-throughput "
        "ratios for this model; entries marked as estimates in the catalog deserve a check.",
        "",
        f"`presets/cloud.toml` ({cloud.machine_type} + {cloud.accelerator_count} x "
        f"{cat.accelerator(cloud.accelerator_type).label}) costs {preset_on:.2f} $/h on demand, "
        f"{preset_spot:.2f} $/h on spot. `psa-cockpit estimate PRESET` turns a preset into hours and "
        "dollars for your data.",
        "",
        f"The Vertex guide's multi-GPU machine, `{multi.machine_type}` + {multi.accelerator_count} x "
        f"{cat.accelerator(multi.accelerator_type).label} (`--set cloud.machine_type={multi.machine_type} --set "
        f"cloud.accelerator_count={multi.accelerator_count}`), costs {multi_on:.2f} $/h on demand, "
        f"{multi_spot:.2f} $/h on spot; the job runs one training process per GPU.",
    ]
    if refused:
        notes += ["", f"Not offered: {', '.join(refused)}: the image's PyTorch + CUDA build needs compute "
                      f"capability {cat.min_compute_capability:.1f} or newer, so the cockpit refuses it."]
    return "\n".join(rows + notes) + "\n"


if __name__ == "__main__":
    sys.exit(_main(render_fn=render, start=START, end=END))
