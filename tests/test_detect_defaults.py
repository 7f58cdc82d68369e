"""A detector built by hand (`ZScore()`) behaves like the one the daemon builds from its default settings."""

from __future__ import annotations

import inspect

import pytest
from pydantic import BaseModel

from edgeslm.detect.context import ContextNovelty
from edgeslm.detect.cusum import Cusum
from edgeslm.detect.ewma import Ewma
from edgeslm.detect.flatline import Flatline
from edgeslm.detect.likelihood import AnomalyLikelihood, EventRate
from edgeslm.detect.multivariate import Hotelling
from edgeslm.detect.robust_zscore import RobustZScore
from edgeslm.detect.spike import Spike
from edgeslm.detect.zscore import ZScore
from edgeslm.settings import DetectSettings

S = DetectSettings()

CASES: list[tuple[type, BaseModel]] = [
    (ZScore, S.zscore), (RobustZScore, S.robust), (Ewma, S.ewma), (Cusum, S.cusum), (Spike, S.spike),
    (Flatline, S.flatline), (ContextNovelty, S.context), (AnomalyLikelihood, S.likelihood),
    (Hotelling, S.multivariate),
]


@pytest.mark.parametrize(("cls", "section"), CASES, ids=[c.__name__ for c, _ in CASES])
def test_constructor_defaults_are_the_shipped_settings(cls: type, section: BaseModel) -> None:
    shared = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
              if name in type(section).model_fields and p.default is not inspect.Parameter.empty}
    assert shared, f"{cls.__name__} shares no parameter with its settings section"
    assert shared == {name: getattr(section, name) for name in shared}


def test_event_rate_defaults_follow_the_likelihood_and_context_settings() -> None:
    params = inspect.signature(EventRate.__init__).parameters
    assert params["long_window"].default == S.likelihood.long_window
    assert params["short_window"].default == S.context.short_window
    assert params["warmup"].default == S.likelihood.warmup
