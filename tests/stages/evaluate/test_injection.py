"""The injected set: the configured Z' share, labelled events, the Z' mass from the sample's own lineage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtt.core.errors import EvaluateError
from mtt.stages.evaluate.injection import SIGNAL, injected_set, zprime_mass


def _events(n: int, start: int) -> pd.DataFrame:
    return pd.DataFrame({"event": np.arange(start, start + n), "m_tt": np.linspace(400.0, 900.0, n)})


def test_the_injected_set_has_the_configured_fraction_and_keeps_which_is_which():
    sm, zprime = _events(5151, 0), _events(3943, 10**6)
    injected, unused = injected_set(sm, zprime, 0.05, np.random.default_rng(7))
    signal = injected[SIGNAL].to_numpy()
    assert signal.sum() == 271 and len(injected) == 5151 + 271  # 0.05 / 0.95 * 5151 = 271.1
    assert signal.mean() == pytest.approx(0.05, abs=1 / len(injected))
    assert (injected.event[signal] >= 10**6).all() and (injected.event[~signal] < 10**6).all()
    assert injected.event[signal].is_unique
    # the Z' events not drawn are the rest of the sample: the signal template of a search
    assert set(unused.event) | set(injected.event[signal]) == set(zprime.event) and len(unused) == 3943 - 271
    again, _ = injected_set(sm, zprime, 0.05, np.random.default_rng(7))
    pd.testing.assert_frame_equal(injected, again)


def test_too_few_zprime_events_name_the_param():
    with pytest.raises(EvaluateError, match=r"needs 271 Z' events; the Z' sample has 100: raise "
                                            r"simulate.zprime.n_events"):
        injected_set(_events(5151, 0), _events(100, 10**6), 0.05, np.random.default_rng(7))


def test_the_mass_comes_from_the_samples_lineage():
    meta = {"generator": {"process": "zprime", "zprime": {"mass": 1000.0, "width": 30.0}}}
    assert zprime_mass(meta, "z") == 1000.0
    with pytest.raises(EvaluateError, match="data/prepared: not a Z' sample .* process 'sm'"):
        zprime_mass({"generator": {"process": "sm"}}, "data/prepared")
    with pytest.raises(EvaluateError, match="process None"):
        zprime_mass({"generator": None}, "nanoaod")


def test_the_untrained_estimators_take_their_sm_shape_from_train_too(small_prepared):
    from mtt.core.dataset import OBJECT_COLUMNS, TARGET, open_split, split_path
    from mtt.stages.evaluate.injection import ELLIPSE, TRUTH, VISIBLE, untrained
    from mtt.stages.evaluate.params import EvaluateParams

    train = open_split(split_path(small_prepared, "train")).read([*OBJECT_COLUMNS, TARGET])
    values = untrained(train, EvaluateParams(), train)
    assert set(values) == {TRUTH, VISIBLE, ELLIPSE} and all(len(v) == len(train) for v in values.values())
    np.testing.assert_array_equal(values[TRUTH], train[TARGET].to_numpy(np.float64))
    assert ELLIPSE not in untrained(train, EvaluateParams(ellipse=False), train)


def test_an_estimator_without_a_peak_to_fit_is_named_not_tabulated():
    """A model still on its loss plateau predicts ~0 GeV: no value in the fit range, so no fit; the table skips it."""
    from mtt.stages.evaluate.tables import zprime_table

    row = {"position": 750.0, "position_shift": 0.0, "width": 20.0, "signal": 100.0, "yield_ratio": 1.0,
           "template_yield": 100.0, "template_yield_error": 10.0}
    text = zprime_table({"mass": 750.0, "n_signal": 100, "n_sm": 2000, "truth": row,
                         "skipped": {"model": "no model value inside [300, 1500] GeV: no peak to fit"}})
    assert "truth" in text and "skipped" not in text
