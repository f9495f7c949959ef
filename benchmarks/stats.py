"""Summaries of repeated measurements: median, 95th percentile and maximum, and ratios of medians."""

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Time-to-ready over every server of one contender at one burst size (seconds)."""

    count: int
    median: float
    p95: float
    max: float


def summarize(seconds: list[float]) -> Summary | None:
    """None when nothing succeeded (every start failed)."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    # Nearest-rank 95th percentile: the smallest value with at least 95% of the values at or below it.
    rank = max(1, -(-95 * len(ordered) // 100))
    return Summary(count=len(ordered), median=statistics.median(ordered), p95=ordered[rank - 1], max=ordered[-1])


def ratio(numerator: Summary | None, denominator: Summary | None, field: str = "median") -> float | None:
    if numerator is None or denominator is None or getattr(denominator, field) == 0:
        return None
    return getattr(numerator, field) / getattr(denominator, field)
