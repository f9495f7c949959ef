"""The benchmark's report: one table with ratios (Jovial / stock, Jovial / floor) and the JSON."""

import json
from dataclasses import asdict
from typing import Any

from .contenders import BurstResult
from .stats import Summary, ratio, summarize

CONTENDERS = ("jovial", "stock", "floor")


def combined(results: list[BurstResult], contender: str, n: int) -> dict[str, Any]:
    """Every burst of one contender at one size (N = 1 is repeated), merged."""
    bursts = [r for r in results if r.contender == contender and r.n == n]
    ready = [s for r in bursts for s in r.ready_seconds]
    spawns = sum(r.n for r in bursts)

    def per_spawn(values: list[float | int | None]) -> float | None:
        known = [v for v in values if v is not None]
        return sum(known) / spawns if known and spawns else None

    windows = [(r.api_calls_in_window, r.window_seconds) for r in bursts if r.api_calls_in_window is not None]
    return {
        "summary": summarize(ready),
        "spawns": spawns,
        "failures": sum(len(r.failures) for r in bursts),
        "stop_seconds": max((r.stop_seconds for r in bursts if r.stop_seconds is not None), default=None),
        "hub_cpu_per_spawn": per_spawn([r.hub_cpu_seconds for r in bursts]),
        "api_calls_per_spawn": per_spawn([r.api_calls_during_starts for r in bursts]),
        "api_calls_per_window": windows[-1][0] if windows else None,
        "window_seconds": windows[-1][1] if windows else None,
        "left_behind": [x for r in bursts for x in r.left_behind],
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(results: list[BurstResult]) -> str:
    """Markdown table: one row per burst size and contender."""
    sizes = sorted({r.n for r in results})
    lines = [
        "| N | contender | median s | p95 s | max s | failures | stop s | hub CPU s/spawn | API calls/spawn "
        "| API calls/30 s with N running | median vs stock | median vs floor | p95 vs floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        rows = {c: combined(results, c, n) for c in CONTENDERS}
        for contender in CONTENDERS:
            row = rows[contender]
            summary: Summary | None = row["summary"]
            window = row["api_calls_per_window"]
            per_30 = None if window is None else window * 30 / row["window_seconds"]
            lines.append(
                f"| {n} | {contender} | {_seconds(summary and summary.median)} | {_seconds(summary and summary.p95)} "
                f"| {_seconds(summary and summary.max)} | {row['failures']}/{row['spawns']} | {_seconds(row['stop_seconds'])} "
                f"| {_seconds(row['hub_cpu_per_spawn'])} | {_seconds(row['api_calls_per_spawn'])} "
                f"| {'-' if per_30 is None else f'{per_30:.0f}'} "
                f"| {_ratio(ratio(summary, rows['stock']['summary'])) if contender == 'jovial' else ''} "
                f"| {_ratio(ratio(summary, rows['floor']['summary'])) if contender != 'floor' else ''} "
                f"| {_ratio(ratio(summary, rows['floor']['summary'], 'p95')) if contender != 'floor' else ''} |"
            )
    return "\n".join(lines)


def as_json(results: list[BurstResult], machine: dict[str, Any]) -> str:
    sizes = sorted({r.n for r in results})
    summary = {
        str(n): {c: {**combined(results, c, n), "summary": _summary_dict(combined(results, c, n)["summary"])} for c in CONTENDERS}
        for n in sizes
    }
    return json.dumps({"machine": machine, "summary": summary, "bursts": [asdict(r) for r in results]}, indent=1)


def _summary_dict(summary: Summary | None) -> dict[str, Any] | None:
    return None if summary is None else asdict(summary)
