"""The live estimate panel beside the preset form, and the result both it and the Cost section show.

Kept apart from the Cost section so the first screen (Presets) does not import the Cost section's table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from cockpit.estimate import Alternative


@dataclass
class EstimateResult:
    """What the app's estimate worker produced for one version of the preset."""
    estimate: Any = None                 # cockpit.estimate.Estimate, None when the preset is invalid
    error: str = ""                      # the engine's one-line message when there is no estimate
    alternatives: list[Alternative] = field(default_factory=list)  # cockpit.estimate.alternatives


def hours_text(h: float) -> str:
    if h < 1:
        return f"{h * 60:.0f} min"
    return f"{h:.1f} h"


def summary(result: EstimateResult) -> Text:
    """A few lines for the live panel beside the preset form."""
    if result.estimate is None:
        return Text(result.error or "estimating...", style="red" if result.error else "dim")
    e = result.estimate
    pay = "spot" if e.spot else "on-demand"
    text = Text()
    text.append("target\n", style="bold")
    text.append(f"{e.target}\n")
    text.append("time       ", style="bold")
    text.append(f"{hours_text(e.hours)}\n")
    text.append("on-demand  ", style="bold")
    text.append(f"{'$' + format(e.on_demand_usd, ',.2f'):<9}", style="bold yellow" if not e.spot else "")
    text.append(f" ${e.hourly_on_demand:,.2f}/h\n")
    text.append("spot       ", style="bold")
    text.append(f"{'$' + format(e.spot_usd, ',.2f'):<9}", style="bold yellow" if e.spot else "")
    text.append(f" ${e.hourly_spot:,.2f}/h\n")
    text.append(f"this preset pays {pay}\n", style="dim")
    if e.storage is not None:
        text.append("storage    ", style="bold")
        text.append(f"${e.storage.usd_per_month:,.2f}/month for {e.storage.total_gb:,.2f} GB\n")
    text.append("step time  ", style="bold")
    text.append(f"{e.source}\n", style="dim")
    return text


class CostPanel(Static):
    """The live estimate beside the form."""

    def show(self, result: EstimateResult) -> None:
        self.update(summary(result))
