"""The overlay figures of the comparison: every configuration on one axis, drawn from evaluate's tables.

A configuration keeps one colour in every figure (in the order of study.configs), an estimator one line style
(`model` solid, `mdn_window` dashed, `mdn_expected` dotted); the ellipse method keeps its colour from
`mtt.core.plots` and the truth is the grey fill.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mtt.core.plots import LABEL, colour, figure, label_spectrum_axes, legend_outside

#: configurations' colours, in the order of study.configs (none of them an estimator's colour of core.plots)
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "teal", "black")
#: an estimator's line style in every overlay
STYLES = {"model": "-", "mdn_window": "--", "mdn_expected": ":", "model_unfolded": "-"}


def config_colours(configs: list[str]) -> dict[str, str]:
    """One colour per configuration, fixed by its place in study.configs."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(configs)}


def _series(name: str, estimator: str) -> str:
    return name if estimator == "model" else f"{name}: {estimator}"


def spectra(tables: dict[str, pd.DataFrame], estimators: list[str], reference: str, path: Path) -> None:
    """Every configuration's spectra over the truth (evaluate's spectrum.csv), the ratio to the truth below."""
    import mplhep

    first = next(iter(tables.values()))
    width = float(np.diff(first.m_tt).mean())
    edges = np.append(first.m_tt.to_numpy() - width / 2, first.m_tt.iloc[-1] + width / 2)
    truth = first.truth.to_numpy(np.float64)
    colours = config_colours(list(tables))
    with figure(path, nrows=2, figsize=(10, 9), sharex=True, gridspec_kw={"height_ratios": (3, 1)}) as (_, axes):
        top, ratio = axes
        mplhep.histplot(truth, edges, ax=top, label="truth", histtype="fill", alpha=0.3, color="grey")
        lines = [(reference, reference, first[reference], colour(reference), "-")] if reference in first else []
        lines += [(_series(name, est), est, table[est], colours[name], STYLES.get(est, "-"))
                  for name, table in tables.items() for est in estimators if est in table]
        for label, _, counts, line_colour, style in lines:
            counts = np.clip(counts.to_numpy(np.float64), 0.0, None)
            mplhep.histplot(counts, edges, ax=top, label=label, color=line_colour, ls=style)
            with np.errstate(divide="ignore", invalid="ignore"):
                mplhep.histplot(counts / truth, edges, ax=ratio, color=line_colour, ls=style)
        label_spectrum_axes(top, ratio)


def bias_resolution(tables: dict[str, pd.DataFrame], estimators: list[str], reference: str, path: Path) -> None:
    """Median bias and resolution per true m_tt bin (evaluate's per_bin.csv) of every configuration."""
    colours = config_colours(list(tables))
    first = next(iter(tables.values()))
    series = [(reference, first, reference, colour(reference), "-")] if f"{reference}_bias" in first else []
    series += [(_series(name, est), table, est, colours[name], STYLES.get(est, "-"))
               for name, table in tables.items() for est in estimators if f"{est}_bias" in table]
    with figure(path, nrows=2, figsize=(10, 9), sharex=True) as (fig, (ax_bias, ax_res)):
        for label, table, est, line_colour, style in series:
            ax_bias.plot(table.m_tt, table[f"{est}_bias"], marker="o", ls=style, label=label, color=line_colour)
            ax_res.plot(table.m_tt, table[f"{est}_resolution"], marker="o", ls=style, color=line_colour)
        ax_bias.axhline(0.0, color="grey", lw=1)
        ax_bias.set_ylabel("median bias", fontsize=16)
        legend_outside(ax_bias)
        ax_res.set_ylabel("resolution", fontsize=16)
        ax_res.set_xlabel("true " + LABEL)
        fig.align_ylabels((ax_bias, ax_res))


def unfolded(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Every configuration's unfolded spectrum (evaluate's unfolded.csv) with its errors, the ellipse method's,
    over the truth; the per-bin relative uncertainty below (what unfolding precision means)."""
    import mplhep

    first = next(iter(tables.values()))
    edges = np.append(first.m_tt_low.to_numpy(), first.m_tt_high.iloc[-1])
    colours = config_colours(list(tables))
    series = [("ellipse_unfolded", first, "ellipse_unfolded", colour("ellipse_unfolded"))]
    series += [(name, table, "model_unfolded", colours[name]) for name, table in tables.items()
               if "model_unfolded" in table]
    with figure(path, nrows=2, figsize=(10, 9), sharex=True, gridspec_kw={"height_ratios": (3, 1)}) as (_, axes):
        top, relative = axes
        mplhep.histplot(first.truth.to_numpy(np.float64), edges, ax=top, label="truth", histtype="fill", alpha=0.3,
                        color="grey")
        centres = (edges[:-1] + edges[1:]) / 2
        for label, table, column, line_colour in series:
            if column not in table:
                continue
            errors = np.hypot(table[f"{column}_stat_err"], table[f"{column}_sys_err"]).to_numpy()
            mplhep.histplot(table[column].to_numpy(), edges, ax=top, yerr=errors, label=label, color=line_colour)
            relative.plot(centres, table[f"{column}_relative_uncertainty"], "o-", color=line_colour)
        top.set_ylabel("events / bin")
        legend_outside(top)
        relative.set_ylabel("rel. uncertainty")
        relative.set_xlabel("true " + LABEL)


def loss_curves(histories: dict[str, pd.DataFrame], path: Path) -> None:
    """Each configuration's val RMSE in GeV per epoch on one axis: the losses themselves are in each head's own
    units (MSE of a scaled target, a mixture's likelihood), the RMSE in GeV is comparable."""
    colours = config_colours(list(histories))
    with figure(path, figsize=(10, 6)) as (_, ax):
        for name, history in histories.items():
            ax.plot(history.epoch + 1, history.val_rmse_gev, marker="o", ms=3, label=name, color=colours[name])
        ax.set_xlabel("epoch")
        ax.set_ylabel("val RMSE [GeV]")
        legend_outside(ax)
