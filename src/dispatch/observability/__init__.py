"""Observability: Prometheus collectors over the components' ``statistics()``, campaign
sampling, and the engine's diagnostics report.

Only plain-Python pieces are imported by hot-path modules (``buckets``, ``receipts``): they
must not pull prometheus-client or the engine in. ``registry.build_registry(engine)`` assembles
the Prometheus side; see docs/OBSERVABILITY.md for the metric list.
"""
