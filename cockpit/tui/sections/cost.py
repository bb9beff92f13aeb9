"""Cost: the estimate of the current preset (on-demand vs spot, hours, where the step time came from)
and the same run priced on every machine + GPU combination the region offers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from cockpit.tui.sections import Section

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


class CostSection(Section):
    SECTION_ID = "cost"
    TITLE = "Cost"
    BINDINGS = [Binding("ctrl+r", "recompute", "Recompute", id="cost.recompute",
                        tooltip="Estimate again (e.g. after a local run measured a new step time)")]
    PALETTE = [("Recompute the estimate", "Estimate the current preset again", "recompute")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("estimating...", id="cost-detail", markup=False)
            yield Label("The same run on every machine + GPU the region offers (cheapest on-demand first):",
                        classes="hint")
            table = DataTable(id="cost-table", cursor_type="row", zebra_stripes=True)
            table.add_columns("machine", "GPU", "n", "time", "on-demand", "spot")
            yield table

    def show(self, result: EstimateResult, current: tuple[str, str, int] | None) -> None:
        detail = self.query_one("#cost-detail", Static)
        if result.estimate is None:
            detail.update(Text(result.error or "estimating...", style="red" if result.error else "dim"))
        else:
            from cockpit.estimate import format_estimate

            detail.update(format_estimate(result.estimate))
        table = self.query_one("#cost-table", DataTable)
        table.clear()
        for alt in result.alternatives:
            here = (alt.machine_type, alt.accelerator_type, alt.accelerator_count) == current
            style = "bold green" if here else ""
            table.add_row(Text(alt.machine_type + (" *" if here else ""), style=style),
                          alt.accelerator_type or "-", str(alt.accelerator_count), hours_text(alt.hours),
                          f"${alt.on_demand_usd:,.2f}", f"${alt.spot_usd:,.2f}")

    def action_recompute(self) -> None:
        self.cockpit.schedule_estimate(delay=0)
