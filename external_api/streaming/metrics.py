"""Prometheus metrics of the event stream (names as in the deployment guide's monitoring section)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS_ACTIVE = Gauge(
    "streaming_connections_active",
    "Open event-stream connections",
    ["connection_type"],
    multiprocess_mode="livesum",  # summed over the live web processes under PROMETHEUS_MULTIPROC_DIR
)
EVENTS_CONSUMED = Counter(
    "streaming_events_consumed_total", "Events sent to stream subscribers", ["event_type", "subscriber"]
)
BATCH_SIZE = Histogram("streaming_batch_size", "Events per sent batch", buckets=(1, 5, 10, 25, 50, 100))
CONNECTIONS_REFUSED = Counter("streaming_connections_refused_total", "Refused stream connections", ["reason"])
