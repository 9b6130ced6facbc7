"""The evaluation and training plots, in the CMS style of mplhep, written as PNG (atomically)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtt.core.io import atomic_file

LABEL = r"$m_{t\bar{t}}$ [GeV]"
#: one colour per estimator in every figure (the truth is the grey fill)
COLOURS = {"model": "tab:blue", "baseline_visible": "tab:olive", "baseline_ellipse": "tab:red",
           "mdn_window": "tab:green", "mdn_mode": "tab:purple", "mdn_mean": "tab:cyan", "mdn_sample": "tab:orange",
           "mdn_expected": "tab:brown", "mdn_likelihood": "tab:pink", "quantile": "goldenrod",
           "model_unfolded": "navy", "ellipse_unfolded": "darkred"}
#: colours for names not in COLOURS (configurations of a study), picked by a stable hash of the name
SPARE = ("black", "tab:gray", "darkgoldenrod", "teal", "indigo", "olivedrab", "sienna", "crimson", "slateblue")


def colour(name: str) -> str:
    """The estimator's colour, the same in every figure; a stable spare one for other names."""
    import zlib

    return COLOURS.get(name) or SPARE[zlib.crc32(name.encode()) % len(SPARE)]


def legend_outside(ax: Any, **kwargs: Any) -> None:
    """The legend to the right of the axes, where it hides no data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=12, **kwargs)


def label_spectrum_axes(top: Any, ratio: Any) -> None:
    """A spectrum over the truth with its ratio panel: axis labels, the legend outside, the ratio's unit line."""
    top.set_ylabel("events / bin")
    legend_outside(top)
    ratio.axhline(1.0, color="grey", lw=1)
    ratio.set_ylim(0, 2)
    ratio.set_ylabel("pred / truth")
    ratio.set_xlabel(LABEL)


@contextmanager
def figure(path: str | os.PathLike[str], **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """(fig, axes) in the mplhep CMS style; saved to `path` on leaving, then closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep

    with plt.style.context(mplhep.style.CMS):
        fig, axes = plt.subplots(**subplots)
        try:
            yield fig, axes
            fig.tight_layout()
            with atomic_file(path) as tmp:
                fig.savefig(tmp, dpi=80, format="png", bbox_inches="tight")
        finally:
            plt.close(fig)


def spectrum(true: np.ndarray, estimates: dict[str, np.ndarray], edges: np.ndarray, path: Path,
             histograms: dict[str, np.ndarray] | None = None) -> None:
    """Predicted vs true m_tt spectra (events histogrammed, and spectra given as counts per bin), with the
    ratio to the truth below: where the spectrum shrinks."""
    import mplhep

    with figure(path, nrows=2, figsize=(9, 9), sharex=True, gridspec_kw={"height_ratios": (3, 1)}) as (_, axes):
        top, ratio = axes
        truth, _ = np.histogram(true, edges)
        mplhep.histplot(truth, edges, ax=top, label="truth", histtype="fill", alpha=0.3, color="grey")
        spectra = {name: np.histogram(pred[np.isfinite(pred)], edges)[0] for name, pred in estimates.items()}
        for name, counts in {**spectra, **(histograms or {})}.items():
            counts = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
            mplhep.histplot(counts, edges, ax=top, label=name, yerr=np.sqrt(counts), color=colour(name))
            with np.errstate(divide="ignore", invalid="ignore"):
                mplhep.histplot(counts / truth, edges, ax=ratio, yerr=np.sqrt(counts) / truth, color=colour(name))
        label_spectrum_axes(top, ratio)


def response_matrix(pred: np.ndarray, true: np.ndarray, edges: np.ndarray, path: Path, name: str) -> None:
    """P(predicted bin | true bin): the migrations an unfolding would have to undo."""
    import mplhep

    ok = np.isfinite(pred)
    counts, _, _ = np.histogram2d(true[ok], pred[ok], [edges, edges])
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    with figure(path, figsize=(9, 8)) as (_, ax):
        mplhep.hist2dplot(normalised, edges, edges, ax=ax, cbarextend=False)
        ax.set_xlabel("true " + LABEL)
        ax.set_ylabel(f"{name} " + LABEL)
        ax.set_title(f"response, normalised per true bin ({name})", fontsize=14)


def bias_resolution(rows: dict[str, pd.DataFrame], path: Path) -> None:
    """Median bias and resolution vs true m_tt, one line per estimator."""
    with figure(path, nrows=2, figsize=(9, 9), sharex=True) as (fig, (ax_bias, ax_res)):
        for name, frame in rows.items():
            centre = (frame.m_tt_low + frame.m_tt_high) / 2
            ax_bias.plot(centre, frame.bias, marker="o", label=name, color=colour(name))
            ax_res.plot(centre, frame.resolution, marker="o", label=name, color=colour(name))
        ax_bias.axhline(0.0, color="grey", lw=1)
        ax_bias.set_ylabel("median bias", fontsize=16)
        legend_outside(ax_bias)
        ax_res.set_ylabel("resolution", fontsize=16)
        ax_res.set_xlabel("true " + LABEL)
        fig.align_ylabels((ax_bias, ax_res))


def residuals(true: np.ndarray, estimates: dict[str, np.ndarray], path: Path) -> None:
    """Distribution of (pred - true) / true per estimator."""
    import mplhep

    edges = np.linspace(-1.0, 1.0, 81)
    with figure(path, figsize=(9, 7)) as (_, ax):
        for name, pred in estimates.items():
            ok = np.isfinite(pred)
            counts, _ = np.histogram((pred[ok] - true[ok]) / true[ok], edges)
            mplhep.histplot(counts / max(ok.sum(), 1), edges, ax=ax, label=name, color=colour(name))
        ax.axvline(0.0, color="grey", lw=1)
        ax.set_xlabel(r"(pred - true) / true")
        ax.set_ylabel("fraction of events")
        legend_outside(ax)


def loss_curve(history: pd.DataFrame, path: Path) -> None:
    """Loss and val_loss vs epoch, with the width ratio: the plot that shows plateaus and shrinkage."""
    with figure(path, nrows=2, figsize=(8, 8), sharex=True) as (_, (ax_loss, ax_width)):
        ax_loss.plot(history.epoch, history.loss, label="train")
        ax_loss.plot(history.epoch, history.val_loss, label="val")
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("loss")
        ax_loss.legend()
        ax_width.plot(history.epoch, history.val_width_ratio)
        ax_width.axhline(1.0, color="grey", lw=0.8)
        ax_width.set_ylabel("std(pred) / std(true)")
        ax_width.set_xlabel("epoch")


def pit_histogram(pit: np.ndarray, path: Path, name: str, bins: int = 20) -> None:
    """The distribution of F_event(true m_tt): flat for a calibrated forecast; a hump means too wide, a U too
    narrow, a slope a bias."""
    with figure(path, figsize=(8, 6)) as (_, ax):
        counts, edges = np.histogram(pit, bins=np.linspace(0.0, 1.0, bins + 1))
        ax.stairs(counts, edges, label=name)
        ax.axhline(len(pit) / bins, color="grey", lw=1, label="calibrated")
        ax.set_xlabel(r"PIT = $F(m_{t\bar{t}}^{true})$")
        ax.set_ylabel("events / bin")
        ax.legend()


def coverage_vs_mtt(edges: np.ndarray, coverages: dict[str, np.ndarray], path: Path) -> None:
    """Fraction of events whose truth lies in the predicted 68% interval, per true m_tt bin."""
    centres = (edges[:-1] + edges[1:]) / 2
    with figure(path, figsize=(8, 6)) as (_, ax):
        for name, values in coverages.items():
            ax.plot(centres, values, "o-", label=name, color=colour(name))
        ax.axhline(0.68, color="grey", lw=1, label="nominal 68%")
        ax.set_ylim(0, 1)
        ax.set_xlabel(LABEL + " (true; predicted median for *_by_prediction)")
        ax.set_ylabel("coverage of the 68% interval")
        legend_outside(ax)


def unfolded(truth: np.ndarray, spectra: dict[str, Any], edges: np.ndarray, path: Path) -> None:
    """Unfolded spectra with their errors over the truth, pulls below, and the per-bin relative uncertainty."""
    import mplhep

    with figure(path, nrows=3, figsize=(9, 11), sharex=True, gridspec_kw={"height_ratios": (3, 1, 1)}) as (_, axes):
        top, pulls, relative = axes
        mplhep.histplot(truth, edges, ax=top, label="truth", histtype="fill", alpha=0.3, color="grey")
        centres = (edges[:-1] + edges[1:]) / 2
        for name, result in spectra.items():
            total = np.sqrt(result.stat_err**2 + result.sys_err**2)
            mplhep.histplot(result.counts, edges, ax=top, yerr=total, label=f"{name} ({result.iterations} it.)",
                            color=colour(name))
            pulls.plot(centres, result.pulls(truth), "o", label=name, color=colour(name))
            relative.plot(centres, result.relative_uncertainty, "o-", label=name, color=colour(name))
        top.set_ylabel("events / bin")
        legend_outside(top)
        pulls.axhline(0.0, color="grey", lw=1)
        pulls.set_ylabel("pull")
        relative.set_ylabel("rel. uncertainty")
        relative.set_xlabel("true " + LABEL)


def injected_spectra(panels: dict[str, dict[str, np.ndarray]], edges: np.ndarray, mass: float, path: Path) -> None:
    """The injected set per estimator: SM events and Z' events stacked (the signal highlighted), the fitted
    background shape and background + peak, the Z' mass marked: how far each estimator moves the peak."""
    import mplhep

    n = len(panels)
    columns = min(n, 3)
    rows = -(-n // columns)
    with figure(path, nrows=rows, ncols=columns, figsize=(5.5 * columns, 4.5 * rows), squeeze=False) as (_, axes):
        for ax, (name, panel) in zip(axes.flat, panels.items(), strict=False):
            if "signal" in panel:
                mplhep.histplot([panel["sm"], panel["signal"]], edges, ax=ax, stack=True, histtype="fill",
                                color=["lightgrey", "tab:red"], label=["SM", "Z'"])
                ax.stairs(panel["signal"], edges, color="darkred", lw=1.5, label="Z' alone")
            else:
                mplhep.histplot(panel["total"], edges, ax=ax, histtype="fill", color="lightgrey", label="SM + Z'")
            centres = (edges[:-1] + edges[1:]) / 2
            ax.plot(centres, panel["fit_background"], color="black", ls=":", lw=1.5, label="SM shape (val)")
            ax.plot(centres, panel["fit_total"], color="tab:blue", lw=1.5, label="fit: SM + Gaussian")
            ax.axvline(mass, color="tab:red", ls="--", lw=1)
            ax.set_title(name, fontsize=14)
            ax.set_xlim(edges[0], min(edges[-1], 2.2 * mass))
            ax.set_xlabel(LABEL, fontsize=12)
            ax.legend(fontsize=9)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)


def metric_curves(histories: dict[str, dict[str, tuple[list[int], list[float]]]], metrics: list[str], path: Path,
                  log_y: set[str], normalise: set[str]) -> None:
    """Several runs' per-epoch metrics, a panel per metric, one line per run: what moves together."""
    columns = min(len(metrics), 3)
    rows = -(-len(metrics) // columns)
    with figure(path, nrows=rows, ncols=columns, figsize=(5.5 * columns, 4.2 * rows), squeeze=False) as (_, axes):
        for ax, metric in zip(axes.flat, metrics, strict=False):
            for label, series in histories.items():
                steps, values = series.get(metric, ([], []))
                values = np.asarray(values, dtype=np.float64)
                if metric in normalise and values.size and values[0] != 0:
                    values = values / values[0]
                ax.plot(steps, values, label=label, lw=1.5)
            ax.set_title(metric + (" / epoch 0" if metric in normalise else ""), fontsize=13)
            ax.set_xlabel("epoch", fontsize=12)
            if metric in log_y:
                ax.set_yscale("log")
        axes.flat[0].legend(fontsize=9)
        for ax in list(axes.flat)[len(metrics):]:
            ax.set_visible(False)
