"""Cost: the estimate of the current preset (on-demand vs spot, hours, where the step time came from)
and the same run priced on every machine + GPU combination the region offers."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

from cockpit.tui.estimate_panel import EstimateResult, hours_text
from cockpit.tui.sections import Section


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

    def on_mount(self) -> None:
        self.show(self.cockpit.estimate_result, self.cockpit.estimate_target())

    def shown(self) -> None:
        self.query_one("#cost-table").focus()

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
