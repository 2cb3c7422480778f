"""Prometheus custom collectors over the components' ``statistics()`` records.

Each collector is called by the registry at scrape time, reads plain counters the owning
component keeps (no lock is taken on any hot path, prometheus-client's custom-collector
pattern) and yields metric families. Naming follows the Prometheus conventions: a
``dispatch_`` prefix, the subsystem (``smpp``, ``route``, ``store``, ``campaign``, ``ingest``,
``engine``, ``simulator``), base units in the name (``_seconds``), ``_total`` on counters
(prometheus-client appends it). Label values are bounded: ESME route names come from the
config, SMPP statuses are the spec's names (vendor statuses outside 0x400-0x4FF, SMPP 3.4
section 5.1.3, are folded into ``other``), receipt stats are the known words or ``OTHER``.
No label ever holds a phone number; the only campaign label is the UUID of at most ``top_n``
active campaigns (``CampaignCollector``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from dispatch.observability.buckets import HistogramSnapshot, snapshot_of
from dispatch.observability.campaigns import RESULT_FIELDS, STAGE_FIELDS, CampaignSnapshot
from dispatch.observability.ingest import IngestStatistics
from dispatch.smpp.constants import CommandStatus

_KNOWN_STATUS_NAMES = frozenset(s.name for s in CommandStatus)
#: SMPP 3.4 section 5.1.3: 0x00000400-0x000004FF is reserved for SMSC vendor-specific errors.
_VENDOR_LOW, _VENDOR_HIGH = 0x400, 0x4FF


def status_label(name: str) -> str:
    """A bounded ``command_status`` label from ``status_name()`` output."""
    if name in _KNOWN_STATUS_NAMES:
        return name
    if name.startswith("0x"):
        try:
            value = int(name, 16)
        except ValueError:
            return "other"
        if _VENDOR_LOW <= value <= _VENDOR_HIGH:
            return name
    return "other"


def _histogram(name: str, doc: str, labels: list[str],
               series: Iterable[tuple[list[str], HistogramSnapshot]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, snap in series:
        family.add_metric(values, snap.cumulative(), snap.sum)
    return family


class _Base(Collector):
    def describe(self) -> Iterable[Metric]:
        # Nothing to pre-declare: names are fixed per collector and unique by construction;
        # returning [] keeps the registry from running collect() at registration.
        return []


# ----------------------------------------------------------------------------- pools

#: (statistics field, metric name without _total, help) of the pools' plain counters.
_POOL_COUNTERS = (
    ("submits", "dispatch_smpp_submits", "submit_sm PDUs written (all segments and retries)."),
    ("throttled", "dispatch_smpp_throttled",
     "Submits answered ESME_RTHROTTLED or ESME_RMSGQFUL (retried after a pause)."),
    ("retries", "dispatch_smpp_retries", "Submits retried after a transient SMSC error."),
    ("inflight_retried", "dispatch_smpp_inflight_retried",
     "Unanswered submits sent again after a drop or a timeout (in-flight policy retry)."),
    ("inflight_unknown", "dispatch_smpp_inflight_unknown",
     "Unanswered submits given up as unknown (in-flight policy unknown)."),
    ("response_timeouts", "dispatch_smpp_response_timeouts",
     "Submits that got no submit_sm_resp within the response timeout."),
    ("late_responses", "dispatch_smpp_late_responses",
     "Responses whose request had already timed out or been retried, or was never sent."),
    ("generic_nacks", "dispatch_smpp_generic_nacks", "generic_nack PDUs received."),
    ("protocol_errors", "dispatch_smpp_protocol_errors",
     "Malformed or unexpected PDUs received from the SMSC."),
    ("connection_drops", "dispatch_smpp_connection_drops",
     "Bound connections that ended without our unbind."),
    ("reconnects", "dispatch_smpp_reconnects", "Binds established again after a drop."),
    ("bind_failures", "dispatch_smpp_bind_failures", "Connect or bind attempts that failed."),
    ("rate_limiter_waits", "dispatch_smpp_rate_limiter_waits",
     "Times a bind waited for the account's TPS limiter."),
    ("mo_messages", "dispatch_smpp_mo_messages",
     "Mobile-originated deliver_sm received and answered."),
)


class PoolCollector(_Base):
    """One series per ESME route: binds, window, TPS, submits, responses, receipts, latency.

    ``pools`` returns the ``BindPool.statistics()`` records of the running pools.
    """

    def __init__(self, pools: Callable[[], Iterable[Any]]) -> None:
        self._pools = pools

    def collect(self) -> Iterator[Metric]:
        stats = list(self._pools())
        binds = GaugeMetricFamily("dispatch_smpp_binds",
                                  "SMPP binds of the ESME account by state (up, down).",
                                  labels=["esme", "state"])
        configured = GaugeMetricFamily("dispatch_smpp_binds_configured",
                                       "SMPP binds configured for the ESME account.",
                                       labels=["esme"])
        queued = GaugeMetricFamily("dispatch_smpp_queued_messages",
                                   "Messages waiting in the pool for a bind.", labels=["esme"])
        used = GaugeMetricFamily("dispatch_smpp_window_used",
                                 "Submits outstanding (sent, not answered) on the bound binds.",
                                 labels=["esme"])
        size = GaugeMetricFamily("dispatch_smpp_window_size",
                                 "Window of the bound sending binds (window per bind x binds).",
                                 labels=["esme"])
        tps = GaugeMetricFamily("dispatch_smpp_tps_limit",
                                "The ESME account's submit rate limit per second (0: none).",
                                labels=["esme"])
        counters = {attr: CounterMetricFamily(name, doc, labels=["esme"])
                    for attr, name, doc in _POOL_COUNTERS}
        responses = CounterMetricFamily("dispatch_smpp_submit_responses",
                                        "submit_sm_resp (and generic_nack) by command_status.",
                                        labels=["esme", "command_status"])
        messages = CounterMetricFamily("dispatch_smpp_messages",
                                       "Messages settled by the pool, by final outcome.",
                                       labels=["esme", "outcome"])
        receipts = CounterMetricFamily("dispatch_smpp_receipts",
                                       "Delivery receipts received and answered (deliver_sm_resp sent; "
                                       "one the SMSC delivers again after a lost answer counts "
                                       "once), by stat word.",
                                       labels=["esme", "stat"])
        evicted = CounterMetricFamily(
            "dispatch_smpp_receipt_delay_evicted",
            "Sampled accepted messages dropped from delay tracking before a receipt came.",
            labels=["esme"])
        latency: list[tuple[list[str], HistogramSnapshot]] = []
        delay: list[tuple[list[str], HistogramSnapshot]] = []
        for st in stats:
            esme = [st.esme]
            binds.add_metric([st.esme, "up"], st.binds_up)
            binds.add_metric([st.esme, "down"], max(0, st.binds_configured - st.binds_up))
            configured.add_metric(esme, st.binds_configured)
            queued.add_metric(esme, st.queued)
            used.add_metric(esme, st.in_flight)
            size.add_metric(esme, st.window_capacity)
            tps.add_metric(esme, getattr(st, "tps_limit", 0.0))
            for attr, family in counters.items():
                family.add_metric(esme, getattr(st, attr))
            folded: dict[str, int] = {}
            for name, n in st.responses_by_status.items():
                label = status_label(name)
                folded[label] = folded.get(label, 0) + n
            for label, n in sorted(folded.items()):
                responses.add_metric([st.esme, label], n)
            messages.add_metric([st.esme, "accepted"], st.accepted)
            messages.add_metric([st.esme, "failed"], st.failed)
            messages.add_metric([st.esme, "unknown"], st.unknown)
            for stat, n in sorted(getattr(st, "receipts_by_stat", {}).items()):
                receipts.add_metric([st.esme, stat], n)
            evicted.add_metric(esme, getattr(st, "receipt_delay_evicted", 0))
            latency.append((esme, snapshot_of(st.latency_buckets_s, st.latency_counts,
                                              st.latency_sum_s)))
            snap = getattr(st, "receipt_delay", None)
            if snap is not None:
                delay.append((esme, snap))
        yield from (binds, configured, queued, used, size, tps, *counters.values(), responses,
                    messages, receipts, evicted)
        yield _histogram("dispatch_smpp_submit_latency_seconds",
                         "Time from writing a submit_sm to its submit_sm_resp.", ["esme"],
                         latency)
        yield _histogram("dispatch_smpp_receipt_delay_seconds",
                         "Time from a message's acceptance to its final receipt (sampled, "
                         "about one message in 64).", ["esme"], delay)


class RouteCollector(_Base):
    """What each route's feeder holds: campaigns it serves and recipients claimed."""

    def __init__(self, routes: Callable[[], Iterable[Any]]) -> None:
        self._routes = routes

    def collect(self) -> Iterator[Metric]:
        sending = GaugeMetricFamily("dispatch_route_campaigns_sending",
                                    "Sending campaigns fed on the route.", labels=["esme"])
        unresolved = GaugeMetricFamily(
            "dispatch_route_claimed_unresolved",
            "Recipients claimed for sending whose submit has no final outcome yet.",
            labels=["esme"])
        claimed = CounterMetricFamily("dispatch_route_claimed",
                                      "Recipients claimed from the store for sending.",
                                      labels=["esme"])
        released = CounterMetricFamily("dispatch_route_released",
                                       "Claimed recipients put back to New unsent (shutdown, "
                                       "pause).", labels=["esme"])
        for rs in self._routes():
            sending.add_metric([rs.esme], rs.campaigns)
            unresolved.add_metric([rs.esme], rs.claimed_unresolved)
            claimed.add_metric([rs.esme], rs.claimed)
            released.add_metric([rs.esme], rs.released_on_shutdown)
        yield from (sending, unresolved, claimed, released)


# ----------------------------------------------------------------------------- store

class WriterCollector(_Base):
    """The group-commit writer: commits, their latency and size, rows written, queue."""

    def __init__(self, writer: Callable[[], Any | None]) -> None:
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        ws = self._writer()
        if ws is None:
            return
        yield CounterMetricFamily("dispatch_store_commits", "Group commits of the dispatch "
                                  "path (submit outcomes and receipts).", value=ws.batches)
        written = CounterMetricFamily("dispatch_store_written_rows",
                                      "Rows committed by the group-commit writer, by kind.",
                                      labels=["kind"])
        written.add_metric(["outcome"], ws.outcomes)
        written.add_metric(["receipt"], ws.receipts)
        yield written
        yield CounterMetricFamily("dispatch_store_receipts_matched",
                                  "Receipts matched to their recipient.",
                                  value=ws.receipts_matched)
        yield CounterMetricFamily("dispatch_store_stale_outcomes",
                                  "Submit outcomes for recipients no longer in flight.",
                                  value=ws.stale_outcomes)
        refused = CounterMetricFamily("dispatch_store_refused_rows",
                                      "Outcomes (recorded as unknown instead) and receipts "
                                      "(dropped) the store refused for their data.",
                                      labels=["kind"])
        refused.add_metric(["outcome"], ws.refused_outcomes)
        refused.add_metric(["receipt"], ws.refused_receipts)
        yield refused
        yield GaugeMetricFamily("dispatch_store_write_queue_rows",
                                "Outcomes and receipts queued for the next commit.",
                                value=ws.queued)
        commit = getattr(ws, "commit_duration", None)
        if commit is not None:
            yield _histogram("dispatch_store_commit_duration_seconds",
                             "Duration of one group commit.", [], [([], commit)])
        rows = getattr(ws, "batch_rows", None)
        if rows is not None:
            yield _histogram("dispatch_store_commit_rows", "Rows in one group commit.", [],
                             [([], rows)])


class CampaignCollector(_Base):
    """Campaigns by status, recipients by campaign status and stage, the top active ones, and
    whether the store answered the last sample (``CampaignSampler``)."""

    def __init__(self, snapshot: Callable[[], CampaignSnapshot | None]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        if snap is None or snap.samples == 0:
            return
        yield GaugeMetricFamily("dispatch_store_up",
                                "1 if the store answered the last campaign sample, else 0.",
                                value=1 if snap.store_ok else 0)
        yield GaugeMetricFamily("dispatch_campaign_sample_timestamp_seconds",
                                "Unix time of the last campaign sample.", value=snap.taken_at)
        yield GaugeMetricFamily("dispatch_campaign_sample_duration_seconds",
                                "Time the last campaign sample took.", value=snap.duration_s)
        yield CounterMetricFamily("dispatch_campaign_sample_failures",
                                  "Campaign samples that failed (store error or timeout).",
                                  value=snap.failures)
        campaigns = GaugeMetricFamily("dispatch_campaigns", "Campaigns by status (not archived).",
                                      labels=["status"])
        for status, n in sorted(snap.campaigns_by_status.items()):
            campaigns.add_metric([status], n)
        yield campaigns
        recipients = GaugeMetricFamily(
            "dispatch_campaign_recipients",
            "Recipients of active campaigns by campaign status and recipient stage.",
            labels=["campaign_status", "stage"])
        for (status, stage), n in sorted(snap.recipients.items()):
            recipients.add_metric([status, stage], n)
        yield recipients
        results = GaugeMetricFamily(
            "dispatch_campaign_receipt_results",
            "Recipients of active campaigns with a receipt, by campaign status and sms_result.",
            labels=["campaign_status", "sms_result"])
        for (status, result), n in sorted(snap.results.items()):
            results.add_metric([status, result], n)
        yield results
        top = GaugeMetricFamily(
            "dispatch_top_campaign_recipients",
            "Recipients by stage of the active campaigns with the most recipients left.",
            labels=["campaign", "esme", "stage"])
        progress = GaugeMetricFamily(
            "dispatch_top_campaign_progress_ratio",
            "Processed / total recipients of the top active campaigns.",
            labels=["campaign", "esme"])
        for f in snap.top:
            for stage, attr in STAGE_FIELDS:
                top.add_metric([f.external_id, f.esme, stage], getattr(f.counters, attr))
            for result, attr in RESULT_FIELDS:
                top.add_metric([f.external_id, f.esme, f"receipt_{result}"],
                               getattr(f.counters, attr))
            progress.add_metric([f.external_id, f.esme], f.progress_ratio)
        yield top
        yield progress
        if snap.kpi is not None:
            yield GaugeMetricFamily("dispatch_kpi_sms_sent",
                                    "SMS accepted by SMSCs across all campaigns (store).",
                                    value=snap.kpi.sms_sent)
            yield GaugeMetricFamily("dispatch_kpi_sms_delivered",
                                    "SMS with a delivered receipt across all campaigns (store).",
                                    value=snap.kpi.sms_delivered)


# ----------------------------------------------------------------------------- engine

class IngestCollector(_Base):
    """Recipient files built into campaigns since start (``IngestStatistics``)."""

    def __init__(self, stats: IngestStatistics) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        st = self._stats
        files = CounterMetricFamily("dispatch_ingest_files", "Recipient files ingested, by "
                                    "format and result.", labels=["format", "result"])
        for (fmt, result), n in sorted(st.files.items()):
            files.add_metric([fmt, result], n)
        yield files
        yield CounterMetricFamily("dispatch_ingest_read_bytes", "Bytes of recipient files read.",
                                  value=st.bytes)
        yield CounterMetricFamily("dispatch_ingest_lines", "Lines of recipient files read.",
                                  value=st.lines)
        yield CounterMetricFamily("dispatch_ingest_recipients",
                                  "Valid unique recipients built from files.", value=st.valid)
        yield CounterMetricFamily("dispatch_ingest_duplicates",
                                  "Duplicate recipients dropped while building.",
                                  value=st.duplicates)
        invalid = CounterMetricFamily("dispatch_ingest_invalid_lines",
                                      "Lines rejected while building, by reason.",
                                      labels=["reason"])
        for reason, n in sorted(st.invalid_by_reason.items()):
            invalid.add_metric([reason], n)
        yield invalid
        yield GaugeMetricFamily("dispatch_ingest_in_progress", "Recipient files being built.",
                                value=st.in_progress)
        yield _histogram("dispatch_ingest_duration_seconds",
                         "Time to build one recipient file into a campaign.", [],
                         [([], st.duration.snapshot())])


class EngineCollector(_Base):
    """The engine itself: build info, builders, control-loop errors, startup recovery."""

    def __init__(self, statistics: Callable[[], Any], version: str,
                 implementation: str) -> None:
        self._statistics = statistics
        self._info = [version, implementation]

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("dispatch_build_info",
                                 "Always 1; the version and the active fast path as labels.",
                                 labels=["version", "fastpath"])
        info.add_metric(self._info, 1)
        yield info
        st = self._statistics()
        yield GaugeMetricFamily("dispatch_engine_builders",
                                "Campaigns whose recipient list is being built.",
                                value=st.builders)
        yield CounterMetricFamily("dispatch_engine_control_errors",
                                  "Control-loop ticks that failed.", value=st.control_errors)
        yield CounterMetricFamily(
            "dispatch_engine_unsent_marked_rows",
            "Unsent recipients of ended campaigns marked Failed in chunks after the ending "
            "transition's first chunk.", value=st.unsent_rows_marked)
        yield CounterMetricFamily(
            "dispatch_engine_unsent_marking_failures",
            "Rounds of that marking abandoned on a store fault (the next round redoes them).",
            value=st.unsent_rounds_failed)
        recovered = GaugeMetricFamily(
            "dispatch_engine_recovered_submits",
            "In-flight submits found at startup after a crash, by what was done with them.",
            labels=["action"])
        rec = st.recovery
        recovered.add_metric(["resent"], rec.resent if rec else 0)
        recovered.add_metric(["marked_unknown"], rec.marked_unknown if rec else 0)
        yield recovered


class SimulatorCollector(_Base):
    """The embedded SMSC simulator's own counts (only when it runs inside the engine)."""

    def __init__(self, stats: Callable[[], Any | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        st = self._stats()
        if st is None:
            return
        yield CounterMetricFamily("dispatch_simulator_submits",
                                  "submit_sm the embedded simulator answered.", value=st.submits)
        yield CounterMetricFamily("dispatch_simulator_receipts_sent",
                                  "Receipts the embedded simulator sent.",
                                  value=st.receipts_sent)
        binds = CounterMetricFamily("dispatch_simulator_binds",
                                    "Bind requests the embedded simulator answered.",
                                    labels=["result"])
        binds.add_metric(["ok"], st.binds_ok)
        binds.add_metric(["rejected"], st.binds_rejected)
        yield binds
        yield GaugeMetricFamily("dispatch_simulator_max_tps",
                                "Most submits the simulator saw in one second.",
                                value=st.max_tps)
