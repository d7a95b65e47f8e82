"""Prometheus metrics of one replica (``GET /metrics``).

Counters and histograms are per process, as Prometheus expects from a
replica it scrapes; ``hitlgate_pending_requests`` is read from the shared
store at scrape time, so every replica reports the same, true number.
With ``--workers N`` set ``PROMETHEUS_MULTIPROC_DIR`` to aggregate the
workers of one replica (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


class _PendingCollector(Collector):
    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("hitlgate_pending_requests", "Requests waiting for approval (read from the store).")
        try:
            gauge.add_metric([], float(self.count()))
        except Exception:  # noqa: BLE001 - a scrape must not fail because the store is briefly unreachable.
            log.warning("could not count pending requests for /metrics", exc_info=True)
            return
        yield gauge


class Metrics:
    """The service's metrics, in their own registry (several apps in one process do not collide)."""

    def __init__(self, count_pending: Callable[[], int]) -> None:
        """``count_pending`` reads the number of pending requests from the store."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter("hitlgate_decisions", "Decisions made, by tier and policy backend.",
                                 ["tier", "backend"], registry=r)
        self.fail_closed = Counter("hitlgate_fail_closed_denials", "Decisions that failed closed to deny, by reason.",
                                   ["reason"], registry=r)
        self.approval_latency = Histogram(
            "hitlgate_approval_latency_seconds", "From proposal to the vote that met the quorum.", registry=r,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400),
        )
        self.verify_failures = Counter("hitlgate_warrant_verify_failures", "Refused warrant checks, by reason.",
                                       ["reason"], registry=r)
        self.request_duration = Histogram(
            "hitlgate_http_request_duration_seconds", "HTTP request duration, by method, route and status.",
            ["method", "route", "status"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self._pending = _PendingCollector(count_pending)
        r.register(self._pending)

    def decided(self, tier: str, backend: str, fail_closed_code: str | None) -> None:
        """Count one decision (and its fail-closed reason, if it failed closed)."""
        self.decisions.labels(tier=tier, backend=backend).inc()
        if fail_closed_code is not None:
            self.fail_closed.labels(reason=fail_closed_code).inc()

    def render(self) -> bytes:
        """The text exposition format of this replica (all workers, in multiprocess mode)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            registry.register(self._pending)
            return generate_latest(registry)
        return generate_latest(self.registry)
