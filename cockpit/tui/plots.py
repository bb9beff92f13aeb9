"""Live training curves from metric events: train/val loss and val QWK per epoch, learning rate per step.

textual-plotext (chosen over textual-plot): it is already the cockpit's dependency, draws several
labelled series with a legend in plain text, and its output is deterministic text, so snapshot tests
stay stable. Epochs of both phases share one x axis (1, 2, ... across phase 1 then phase 2).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.containers import Vertical
from textual_plotext import PlotextPlot

from cockpit.backend import MetricEvent


@dataclass
class Curves:
    """The plotted series; x of epoch series is the epoch's position across both phases."""
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float | None] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_qwk: list[float | None] = field(default_factory=list)
    lr_steps: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    def add(self, ev: MetricEvent) -> bool:
        """Record what the event carries; True when a curve changed."""
        if ev.event == "epoch":
            self.epochs.append(len(self.epochs) + 1)
            self.train_loss.append(ev.train_loss)
            self.val_loss.append(ev.val_loss)
            self.val_qwk.append(ev.val_qwk)
            if ev.lr is not None and ev.step is None:
                self.lr_steps.append(len(self.lr_steps) + 1)
                self.lr.append(ev.lr)
            return True
        if ev.event == "step" and ev.lr is not None and ev.step is not None:
            self.lr_steps.append(ev.step)
            self.lr.append(ev.lr)
            return True
        return False


def _ticks(xs: list[int], most: int = 6) -> list[int]:
    """At most `most` whole-number ticks (epochs are integers; plotext would label 2.8, 4.5...)."""
    if not xs:
        return []
    lo, hi = min(xs), max(xs)
    step = max(1, -(-(hi - lo) // (most - 1)))
    return list(range(lo, hi + 1, step))


MAX_POINTS = 300  # more than a plot's width in braille dots: thinning loses nothing visible


def _points(xs: list[int], ys: list[float | None]) -> tuple[list[int], list[float]]:
    pairs = [(x, y) for x, y in zip(xs, ys) if y is not None]
    if len(pairs) > MAX_POINTS:  # plotext's cost grows with points; a long run's curve is thinned
        step = -(-len(pairs) // MAX_POINTS)
        pairs = pairs[::step] + ([pairs[-1]] if (len(pairs) - 1) % step else [])
    return [p[0] for p in pairs], [p[1] for p in pairs]


class MetricPlots(Vertical):
    """Three stacked plots fed with `add(event)`; redraws on `flush()`, at most every REDRAW_S seconds
    (a plotext redraw costs milliseconds; a fast stream must not pay it per batch)."""

    REDRAW_S = 0.5

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.curves = Curves()
        self._stale = True
        self._drawn = float("-inf")
        self._pending = None

    def compose(self) -> ComposeResult:
        yield PlotextPlot(id="plot-loss")
        yield PlotextPlot(id="plot-qwk")
        yield PlotextPlot(id="plot-lr")

    def on_mount(self) -> None:
        self.flush(force=True)

    def reset(self) -> None:
        self.curves = Curves()
        self._stale = True
        self.flush(force=True)

    def add(self, ev: MetricEvent) -> None:
        if self.curves.add(ev):
            self._stale = True

    def flush(self, force: bool = False) -> None:
        if not self._stale:
            return
        now = time.monotonic()
        if not force and now - self._drawn < self.REDRAW_S:
            if self._pending is None:  # draw the latest points once the interval has passed
                self._pending = self.set_timer(self.REDRAW_S, lambda: self.flush(force=True))
            return
        if self._pending is not None:
            self._pending.stop()
            self._pending = None
        self._stale, self._drawn = False, now
        c = self.curves
        self._draw("#plot-loss", "loss per epoch", c.epochs,
                   [(c.train_loss, {"label": "train"}), (c.val_loss, {"label": "val"})])
        self._draw("#plot-qwk", "val QWK per epoch", c.epochs, [(c.val_qwk, {"color": "green"})])
        self._draw("#plot-lr", "learning rate", c.lr_steps, [(c.lr, {"color": "yellow"})], max_ticks=4)

    def _draw(self, plot_id: str, title: str, xs_all, series, max_ticks: int | None = None) -> None:
        """Redraw one plot: each (ys, plot kwargs) in `series` against `xs_all`."""
        widget = self.query_one(plot_id, PlotextPlot)
        plt = widget.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        for ys, style in series:
            xs, vs = _points(xs_all, ys)
            if xs:
                plt.plot(xs, vs, marker="braille", **style)
        if max_ticks is None:
            plt.xticks(_ticks(xs_all))
        elif xs_all:  # the step axis gets ticks only once there are steps
            plt.xticks(_ticks(xs_all, max_ticks))
        widget.refresh()
