"""``--threshold EXPR``: a run's verdict on any figure of its report, as k6 writes them.

An expression is ``METRIC OP NUMBER[UNIT]``, for example ``p99<50ms``, ``loss<=0.1%``,
``connected>=990``, ``connected>=99%`` or ``rate>=90000``. OP is one of ``< <= > >=``.

=========================  =====================================  ==========================
metric                     what                                   units
=========================  =====================================  ==========================
p50 p90 p99 p999 max mean  latency (echo: the round trip)         ms (default), us, s
loss                       lost / expected                        a fraction, or %
lost duplicates reordered  message counts                         none
connected                  sockets connected                      a count, or % of the target
failed disconnected        sockets that failed to connect, or     none
                           were closed during the run
rate                       messages received per second           none (per second)
checks                     hub bench script: the checks passed    a fraction, or %
errors iterations          script: VU errors; iterations done     none
NAME.STAT                  script: a trend (expect_latency,       ms (default), us, s;
                           iteration_duration or the script's     count: none
                           own), STAT one of p50 p90 p95 p99
                           p999 min max mean count
=========================  =====================================  ==========================

An expression is checked when the command line is read, so a typo fails before any socket
opens (exit status 2), with what to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub.bench.schema import Report, Section

__all__ = ["Threshold", "ThresholdError", "parse_threshold"]

_LATENCY = ("p50", "p90", "p99", "p999", "max", "mean")
_COUNTS = ("lost", "duplicates", "reordered")
_SOCKETS = ("connected", "failed", "disconnected")
_SCRIPT = ("checks", "errors", "iterations")
METRICS = (*_LATENCY, "loss", *_COUNTS, *_SOCKETS, "rate", *_SCRIPT)
TREND_STATS = ("p50", "p90", "p95", "p99", "p999", "min", "max", "mean", "count")
_UNITS = {"ms": 1.0, "us": 0.001, "µs": 0.001, "s": 1000.0}
_EXPR = re.compile(
    r"^\s*([a-z0-9_]+(?:\.[a-z0-9_]+)?)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+)\s*([a-zµ%]*)\s*$",
    re.IGNORECASE,
)
_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class ThresholdError(ValueError):
    """An expression that cannot be checked; the message says what to write."""


@dataclass(frozen=True)
class Threshold:
    """One parsed expression; ``limit`` is in the metric's base unit (ms, a fraction, or a
    count), ``percent_of_target`` for ``connected>=99%``."""

    text: str
    metric: str
    op: str
    limit: float
    percent_of_target: bool = False

    def check(self, report: Report) -> Section:
        """The row of ``report["thresholds"]``: name, limit, measured value, failed."""
        value = self.measure(report)
        return {
            "name": self.text,
            "limit": self.limit,
            "value": value,
            # A figure the run could not measure (no latency at all) proves nothing good.
            "failed": value is None or not _OPS[self.op](value, self.limit),
        }

    def measure(self, report: Report) -> float | None:
        messages = report.get("messages", {})
        connections = report.get("connections", {})
        metric = self.metric
        if metric in _SCRIPT or "." in metric:
            return _script_figure(report.get("script", {}), metric)
        if metric in _LATENCY:
            micros = report.get("latency_us", {}).get(metric)
            return None if micros is None else micros / 1000
        if metric == "loss":
            expected = messages.get("expected") or 0
            return round(messages.get("lost", 0) / expected, 6) if expected else 0.0
        if metric in _COUNTS:
            return float(messages.get(metric, 0))
        if metric == "rate":
            rate = messages.get("recv_per_s")
            return None if rate is None else float(rate)
        count = float(connections.get(metric, 0))
        if self.percent_of_target:
            target = connections.get("target") or 0
            return round(count / target, 6) if target else 0.0
        return count


def _script_figure(script: Section, metric: str) -> float | None:
    """A script run's figure (None: not measured, as in any other scenario's report)."""
    if metric == "checks":
        rate = script.get("checks", {}).get("rate")
        return None if rate is None else float(rate)
    if metric == "errors":
        return float(sum(script["errors"].values())) if "errors" in script else None
    if metric == "iterations":
        done = script.get("iterations", {}).get("completed")
        return None if done is None else float(done)
    name, stat = metric.split(".")
    value = script.get("trends_us", {}).get(name, {}).get(stat)
    if value is None or stat == "count":
        return None if value is None else float(value)
    return float(value) / 1000


def _trend_limit(text: str, stat: str, limit: float, unit: str) -> float:
    if stat not in TREND_STATS:
        raise ThresholdError(f"{text!r}: a trend's figure is one of {', '.join(TREND_STATS)}")
    if stat == "count":
        if unit:
            raise ThresholdError(f"{text!r}: a count is a plain number, without a unit")
        return limit
    if unit not in ("", *_UNITS):
        raise ThresholdError(f"{text!r}: a trend is in ms (the default), us or s")
    return limit * _UNITS.get(unit, 1.0)


def parse_threshold(text: str) -> Threshold:
    """``p99<50ms`` → Threshold; raise ThresholdError with what to fix."""
    match = _EXPR.match(text)
    if match is None:
        raise ThresholdError(
            f"{text!r} is not METRIC OP NUMBER[UNIT], for example 'p99<50ms', 'loss<=0.1%', "
            "'connected>=99%' or 'rate>=90000'"
        )
    metric, op, number, unit = match.groups()
    if "." in metric:  # a script's trend: its names are the script's, known only at the end
        stat = metric.split(".")[1]
        limit = _trend_limit(text, stat, float(number), unit)
        return Threshold(text.replace(" ", ""), metric, op, limit)
    metric = metric.lower()
    if metric not in METRICS:
        raise ThresholdError(f"unknown metric {metric!r} in {text!r}: use {', '.join(METRICS)}")
    limit = float(number)
    percent = False
    if metric in _LATENCY:
        if unit not in ("", *_UNITS):
            raise ThresholdError(f"{text!r}: a latency is in ms (the default), us or s")
        limit *= _UNITS.get(unit, 1.0)
    elif metric in ("loss", "checks") or (metric == "connected" and unit == "%"):
        if unit == "%":
            limit /= 100
            percent = metric == "connected"
        elif unit:
            raise ThresholdError(f"{text!r}: {metric} is a fraction (0.001) or a percentage (0.1%)")
        if not 0 <= limit <= 1:
            raise ThresholdError(f"{text!r}: a share must lie between 0 and 1 (0% and 100%)")
    elif unit:
        raise ThresholdError(f"{text!r}: {metric} is a plain number, without a unit")
    return Threshold(text.replace(" ", ""), metric, op, limit, percent)
