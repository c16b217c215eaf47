import numpy as np
import pytest
from hypothesis import settings


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# Hypothesis profiles: "ci" bounds the fuzz suite (tests/test_fuzz.py) to about a minute;
# `pytest --fuzz` loads "fuzz", 50 times as many examples, for a long campaign.
settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile("fuzz", max_examples=5_000, deadline=None)


def pytest_addoption(parser):
    parser.addoption("--fuzz", action="store_true", help="run the fuzz suite long (hypothesis profile 'fuzz')")


def pytest_configure(config):
    settings.load_profile("fuzz" if config.getoption("--fuzz") else "ci")
