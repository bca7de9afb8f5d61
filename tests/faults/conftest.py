"""The fault suite: the system as real processes on real Kafka and a real database, under
load, while a part of it fails (see scenario.py). Each test shows its figures in pytest's
summary (`figures`, tests/conftest.py), also when it fails."""

from collections.abc import Callable

import pytest

from tests.conftest import FIGURES
from tests.faults.scenario import Figures

pytestmark = pytest.mark.e2e


@pytest.fixture
def show_figures(record_property: Callable[[str, object], None]) -> Callable[[Figures], None]:
    def show(figures: Figures) -> None:
        record_property(FIGURES, "\n".join(figures.lines()))

    return show
