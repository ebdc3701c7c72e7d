"""One trivial test per tier: run by tests/test_ci_tiers.py through the real test commands.

Not named test_*.py, so the suite does not collect it; it runs only when given by path.
"""

import pytest


def test_fast_tier():
    pass


@pytest.mark.slow
def test_slow_tier():
    pass


@pytest.mark.long
def test_long_tier():
    pass
