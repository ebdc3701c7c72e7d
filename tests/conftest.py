"""Project-wide pytest settings, and the per-tier summary printed at the end of every run.

Tiers: a test marked `long` is in the long tier, else one marked `slow` in the slow tier, else
in the fast tier (`tools/test.sh` picks the tiers with `-m`). The summary says which tiers the
marker expression let run and how many tests of each passed / failed / were skipped, so a CI
log shows what it actually ran (a slow tier that silently dropped out reads "not run").
"""

from __future__ import annotations

import collections

from _pytest.mark.expression import Expression

TIERS = ("fast", "slow", "long")


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase carries a deprecated `test_session` context manager that pytest collects
    # and TF then skips as "Not a test"; drop it so every skip in the summary is a real one.
    items[:] = [item for item in items if item.name != "test_session"]


def tier_of(keywords) -> str:
    """The tier of a test from its keywords (markers included)."""
    return "long" if "long" in keywords else "slow" if "slow" in keywords else "fast"


def tiers_selected(markexpr: str) -> list[str]:
    """Tiers whose tests the `-m` expression admits (a test of tier t carries marker t only)."""
    if not markexpr:
        return list(TIERS)
    expr = Expression.compile(markexpr)
    return [t for t in TIERS if expr.evaluate(lambda name, t=t: name == t)]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    counts = {t: collections.Counter() for t in TIERS}
    for outcome, reports in terminalreporter.stats.items():
        for report in reports:
            when = getattr(report, "when", None)
            # One count per test: its call, or the setup that skipped or errored it.
            if outcome == "deselected":
                counts[tier_of(report.keywords)]["deselected"] += 1
            elif when == "call" or (
                when in ("setup", "teardown") and outcome in ("skipped", "error")
            ):
                counts[tier_of(report.keywords)][outcome] += 1
    markexpr = config.option.markexpr
    selected = tiers_selected(markexpr)
    terminalreporter.section("test tiers")
    terminalreporter.write_line(
        f"marker expression: {markexpr or '(none)'}; tiers run: {', '.join(selected) or 'none'}"
    )
    for tier in TIERS:
        c = counts[tier]
        ran = sum(v for k, v in c.items() if k != "deselected")
        parts = [f"{v} {k}" for k, v in sorted(c.items()) if k != "deselected"]
        state = "run" if tier in selected else "not run"
        deselected = f" ({c['deselected']} deselected)" if c["deselected"] else ""
        terminalreporter.write_line(
            f"tier {tier}: {state}, {ran} tests"
            f"{': ' + ', '.join(parts) if parts else ''}{deselected}"
        )
