"""Prometheus metrics of one server (a registry per app, no module-level state)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from burnish.serve.engine import BATCH_BUCKETS, ServeEngine

__all__ = ["ServeMetrics"]

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _EngineCollector(Collector):
    """Reads the engine's counters at scrape time."""

    def __init__(self, engine: ServeEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator:
        s = self.engine.stats
        for name, value, doc in (
            ("burnish_prompt_tokens", s.prompt_tokens, "Prompt tokens prefilled."),
            ("burnish_generation_tokens", s.generation_tokens, "Tokens generated."),
            ("burnish_engine_requests", s.requests, "Requests admitted into a batch."),
            ("burnish_forward_passes", s.forward_passes, "Model forward passes."),
        ):
            c = CounterMetricFamily(name, doc)
            c.add_metric([], value)
            yield c
        queue = GaugeMetricFamily("burnish_queue_depth", "Requests waiting for a batch slot.")
        queue.add_metric([], self.engine.waiting)
        yield queue
        running = GaugeMetricFamily("burnish_running_choices", "Choices in the decode batch.")
        running.add_metric([], s.running)
        yield running
        cumulative, buckets = 0, []
        for bound, count in zip([*BATCH_BUCKETS, float("inf")], s.batch_counts, strict=True):
            cumulative += count
            buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
        hist = HistogramMetricFamily("burnish_batch_size", "Choices per decode step.")
        hist.add_metric([], buckets, sum_value=None)
        yield hist


class ServeMetrics:
    """The app's registry: request counts and latency by endpoint and status, plus the
    engine's counters (tokens, queue depth, batch sizes)."""

    def __init__(self, engine: ServeEngine) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "burnish_requests",
            "HTTP requests by endpoint and status.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "burnish_request_latency_seconds",
            "Time from request to the last byte of the response.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(engine))
