"""Per-variant gateway metrics from Kong's bundled ``http-log`` plugin.

Kong's own Prometheus plugin has no label for the target that served a request
(``kong/plugins/prometheus/exporter.lua``: service, route, code, consumer; targets only in
the health gauge), so Kayenta could not tell canary from baseline with it. The
http-log entries do say it: ``tries[-1]`` is the balancer's last pick. This package
maps that ``ip:port`` to a variant and counts it:

- ``entries``  parse a posted body and tally it (the hot path; no Flask, no Kong);
- ``addresses``  ``ip:port`` -> variant per upstream, from ``/upstreams/{u}/health``;
- ``metrics``  the Prometheus series, fed in bulk from a tally;
- ``ingest``  one call that ties the three together for the endpoint and the bench;
- ``plugin``/``kong_plugins``  the http-log plugin config, attached for the canary window;
- ``window``  opens and closes that window as the split changes (a TrafficService observer).
"""

from __future__ import annotations

from sidecar.gateway.addresses import AddressMap, VariantResolver, build_address_map
from sidecar.gateway.entries import Tally, parse_batch, tally
from sidecar.gateway.ingest import GatewayIngest, IngestResult
from sidecar.gateway.metrics import LATENCY_BUCKETS_MS, GatewayMetrics
from sidecar.gateway.plugin import (
    UPSTREAM_HEADER,
    attach_http_log,
    detach_http_log,
    http_log_config,
    http_log_plugin,
)
from sidecar.gateway.window import GatewayWindow, IngestConfig

__all__ = [
    "LATENCY_BUCKETS_MS",
    "UPSTREAM_HEADER",
    "AddressMap",
    "GatewayIngest",
    "GatewayMetrics",
    "GatewayWindow",
    "IngestConfig",
    "IngestResult",
    "Tally",
    "VariantResolver",
    "attach_http_log",
    "build_address_map",
    "detach_http_log",
    "http_log_config",
    "http_log_plugin",
    "parse_batch",
    "tally",
]
