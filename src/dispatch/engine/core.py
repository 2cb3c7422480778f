"""The engine root: one trio loop running the store writer, the SMPP pools, the routes, the
control loop, the builders, the embedded simulator and the control API.

Start-up order: open the store, ``recover_inflight`` (before any claim, so recipients a crash
left in stage Sending follow the configured ``RecoveryPolicy``), start the group-commit writer,
the embedded simulator when no ESME is configured, one ``BindPool`` + ``Route`` per ESME, the
control loop, and the API. Campaigns that were active resume by themselves: the control loop
finds them in the store.

Shutdown (``stop()``) is graceful first: feeding and the control loop stop, pools drain their
windows and unbind, messages the pools never submitted go back to New, the writer commits
everything queued, then the simulator and API are cancelled and the store closed.

The control loop runs every ``control_interval_s``, and within ``tick_s`` of any campaign being
created or changing status (so a pause or cancel stops the sending at once); it is where the
lifecycle advances by itself: Pending campaigns with auto-start begin building at their start time, Building ones are
built (one builder task each), Sending ones pause outside their daily window and resume inside
it, expire at their end time, and finish when no recipient is left New or in flight. Beside
it, ``UnsentMarking`` (dispatch.engine.unsent) marks what ended campaigns still hold New or
Held beyond what their ending transition marked, one chunk per store call.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from dispatch import interpreter
from dispatch.campaigns.errors import Conflict, InvalidTransition, NotFound
from dispatch.campaigns.model import (
    Campaign,
    CampaignKind,
    CampaignMode,
    CampaignStatus,
    PausedBy,
)
from dispatch.campaigns.schedule import is_expired, may_start, window_open
from dispatch.campaigns.service import CampaignService, ServiceConfig
from dispatch.engine.builder import BuildFailed, build_recipients
from dispatch.engine.config import SIMULATOR_ROUTE, EngineConfig
from dispatch.engine.membership import ClusterMembership
from dispatch.engine.route import Route
from dispatch.engine.unsent import UnsentMarking
from dispatch.ingest import IngestSummary, ctn_hash, mask_number, normalize_phone
from dispatch.logs import log_event, redact_digits
from dispatch.observability.campaigns import CampaignSampler
from dispatch.observability.diagnostics import engine_diagnostics
from dispatch.observability.ingest import IngestStatistics
from dispatch.observability.registry import build_registry
from dispatch.simulator import SmscSimulator
from dispatch.simulator import run as run_simulator
from dispatch.store import cluster_of, is_postgres, open_engine_stores
from dispatch.store.asyncstore import AsyncStore
from dispatch.store.base import Counters, JobError, RecoveryCounts
from dispatch.store.faults import STORE_FAULTS, describe
from dispatch.store.writer import GroupCommitWriter
from dispatch.transport.config import EsmeConfig
from dispatch.transport.pool import BindPool

log = logging.getLogger(__name__)

#: A graceful stop waits at most this long for a store that cannot write (then see
#: ``Engine._abandon_drain_if_store_down``).
SHUTDOWN_STORE_GRACE_S = 5.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def _unknown_route(esme: str) -> str:
    """Why a campaign is failed whose route names no ESME configured on this engine (the
    state history's reason, and its job error)."""
    return f"unknown ESME route {esme!r}"


@dataclass(frozen=True)
class EngineStatistics:
    campaigns_active: int
    builders: int
    recovery: RecoveryCounts | None
    control_errors: int
    # ended campaigns' unsent recipients marked after their ending transition (UnsentMarking)
    unsent_rows_marked: int = 0
    unsent_rounds_failed: int = 0


class Engine:
    """``engine = Engine(config); await nursery.start(engine.run); ...; engine.stop()``."""

    def __init__(self, config: EngineConfig, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.config = config
        self.clock = clock
        self.hash_key = config.hash_key()
        self.store: AsyncStore | None = None
        self.service: CampaignService | None = None
        self.writer: GroupCommitWriter | None = None
        self.simulator: SmscSimulator | None = None
        self.routes: dict[str, Route] = {}
        self.membership: ClusterMembership | None = None  # PostgreSQL cluster node only
        self.api_port: int | None = None
        self.api_app: Any = None  # the control API's app (control.app.ControlApp) once served
        self.recovery: RecoveryCounts | None = None
        self.unsent: UnsentMarking | None = None  # the rest of ended campaigns' unsent rows
        self._builders: set[int] = set()
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self._active = 0
        self._control_errors = 0
        self._sending: dict[int, Campaign] = {}  # Sending at the last tick that read them
        self._ingest_options = config.ingest_options(self.hash_key)
        # Metrics: collectors read the components' statistics() at scrape time.
        self.observability = config.observability
        self.ingest_stats = IngestStatistics()
        self.campaign_sampler: CampaignSampler | None = None
        self.metrics_registry = build_registry(self)

    # ------------------------------------------------------------------ public

    def stop(self) -> None:
        """Ask for a graceful shutdown; ``run`` returns when it is done."""
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def prepare_number(self, text: str) -> tuple[str, bytes, str]:
        """A caller's phone number -> (E.164 digits, ctn_hash, masked); ValueError if invalid."""
        digits, reason = normalize_phone(text, self.config.ingest.trunk())
        if digits is None:
            raise ValueError(reason or "invalid phone number")
        return digits, ctn_hash(self.hash_key, digits), mask_number(digits)

    def _released(self, campaign: Campaign) -> None:
        """Recipients of ``campaign`` became New (trigger, transactional add): wake its route
        so they go out now, not at the next control tick."""
        route = self.routes.get(campaign.esme)
        if route is not None and campaign.id is not None:
            route.wake(campaign.id)

    def statistics(self) -> EngineStatistics:
        unsent = self.unsent
        return EngineStatistics(self._active, len(self._builders), self.recovery,
                                self._control_errors,
                                unsent.rows_marked if unsent else 0,
                                unsent.rounds_failed if unsent else 0)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        # Before the first thread of the engine allocates (see dispatch.interpreter).
        interpreter.limit_malloc_arenas()
        # SQLite, or PostgreSQL when [store] dsn is set; the writing store in a process of
        # its own unless [store] process = false; reads (API, control loop) through a second
        # store in this process, on their own thread, so they never queue behind group
        # commits (dispatch.store.open_engine_stores).
        primary, reader = await trio.to_thread.run_sync(open_engine_stores, cfg.store)
        store = AsyncStore(primary, reader)
        self.store = store
        self.unsent = UnsentMarking(store, cfg.store.unsent_mark_rows, self.clock)
        try:
            self.recovery = await store.recover_inflight(cfg.store.recovery_policy, self.clock())
            if self.recovery.resent or self.recovery.marked_unknown:
                log_event(log, logging.WARNING, "recovered in-flight submits after a crash",
                          policy=cfg.store.recovery_policy.value, resent=self.recovery.resent,
                          marked_unknown=self.recovery.marked_unknown)
            self.service = CampaignService(store, ServiceConfig(), self.clock,
                                           prepare_number=self.prepare_number,
                                           on_release=self._released)
            self.writer = GroupCommitWriter(store, cfg.store, self.clock)
            await self._run_nurseries(task_status)
        finally:
            with trio.CancelScope(shield=True):
                await store.aclose()
            self._stopped.set()

    # ------------------------------------------------------------------ structure

    async def _run_nurseries(self, task_status: Any) -> None:
        cfg = self.config
        assert self.writer is not None
        writer_done = trio.Event()

        async def run_writer(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await self.writer.run(task_status=task_status)  # type: ignore[union-attr]
            finally:
                writer_done.set()

        async with trio.open_nursery() as outer:
            await outer.start(run_writer)
            obs = self.observability
            self.campaign_sampler = CampaignSampler(
                self.store, interval_s=obs.campaign_sample_interval_s,  # type: ignore[arg-type]
                top_n=obs.top_campaigns, timeout_s=obs.campaign_sample_timeout_s)
            outer.start_soon(self.campaign_sampler.run)
            esmes = list(cfg.esmes)
            if not esmes and cfg.simulator.enabled:
                self.simulator = await outer.start(run_simulator, cfg.simulator.settings)
                esmes = [self._simulator_esme()]
            if not esmes:
                raise RuntimeError("no ESME configured and the embedded simulator is disabled")
            async with trio.open_nursery() as inner:
                feeders = trio.CancelScope()
                for esme in esmes:
                    # Receipts are answered only after the store committed them (Route).
                    pool = BindPool(replace(esme, defer_deliver_acks=True))
                    await inner.start(pool.run)
                    route = Route(esme.name, pool, self.store, self.writer,  # type: ignore[arg-type]
                                  cfg.scheduler, self.clock)
                    self.routes[esme.name] = route
                    inner.start_soon(route.consume)
                if is_postgres(cfg.store):
                    # A cluster node (issue 8): register, take this node's TPS share and
                    # start heartbeats/takeover before the first claim; see membership.py.
                    store = self.store
                    assert store is not None
                    self.membership = ClusterMembership(
                        store, cluster_of(store.sync),
                        cfg.store, self.routes, self.clock, self.stop)
                    await outer.start(self.membership.run)
                inner.start_soon(self._feed_all, feeders)
                if cfg.api_enabled:
                    await self._start_api(outer)
                interpreter.tune(cfg.gc_young_threshold, cfg.gil_switch_interval_s)  # after start-up
                log_event(log, logging.INFO, "engine started", routes=list(self.routes),
                          api_port=self.api_port,
                          store="postgresql" if cfg.store.dsn else cfg.store.path)
                task_status.started(self)
                await self._stop.wait()
                log_event(log, logging.INFO, "engine stopping")
                outer.start_soon(self._abandon_drain_if_store_down, outer.cancel_scope)
                feeders.cancel()
                for route in self.routes.values():
                    route.pool.close()
            # Pools have drained and closed their outcome channels; consumers are done.
            for route in self.routes.values():
                await route.release_unsent()
            await self.writer.aclose()
            await writer_done.wait()
            if self.membership is not None:  # results are durable: leave the cluster
                await self.membership.leave()
            outer.cancel_scope.cancel()
        log_event(log, logging.INFO, "engine stopped")

    async def _abandon_drain_if_store_down(self, scope: trio.CancelScope) -> None:
        """During shutdown: if the store stays unwritable for ``SHUTDOWN_STORE_GRACE_S``, stop
        waiting for the drain (which would wait for the store) and cancel the rest. What was
        not committed is then exactly what a kill -9 leaves, which start-up recovery handles:
        claimed recipients follow the recovery policy, unanswered receipts come again."""
        assert self.writer is not None
        health = self.writer.health
        down_s = 0.0
        step_s = 0.1
        while down_s < SHUTDOWN_STORE_GRACE_S:
            await trio.sleep(step_s)
            down_s = down_s + step_s if health.down else 0.0
        log_event(log, logging.ERROR, "store still unavailable: shutdown without draining",
                  grace_s=SHUTDOWN_STORE_GRACE_S, error=health.statistics().last_error)
        scope.cancel()

    def _simulator_esme(self) -> EsmeConfig:
        sim_cfg = self.config.simulator
        assert self.simulator is not None
        account = sim_cfg.settings.accounts[0]
        return EsmeConfig(name=SIMULATOR_ROUTE, host=sim_cfg.settings.host,
                          port=self.simulator.port, system_id=account.system_id,
                          password=account.password, binds=sim_cfg.binds,
                          window=sim_cfg.window, tps=sim_cfg.tps)

    async def _start_api(self, nursery: trio.Nursery) -> None:
        from control.app import create_app
        from control.serve import serve_api

        assert self.service is not None
        control = self.config.control
        app = create_app(self.service, control, prepare_number=self.prepare_number,
                         diagnostics=self.diagnostics, registry=self.metrics_registry,
                         store_health=self.writer.health if self.writer else None)
        await nursery.start(app.exports.run)
        self.api_app = app
        self.api_port = await nursery.start(serve_api, app, control.host, control.port)

    async def _feed_all(self, scope: trio.CancelScope) -> None:
        with scope:
            async with trio.open_nursery() as nursery:
                for route in self.routes.values():
                    nursery.start_soon(route.feed)
                nursery.start_soon(self._control_loop)
                nursery.start_soon(self._purge_unmatched_receipts)
                assert self.unsent is not None
                nursery.start_soon(self.unsent.run, self._sleep_until_changed,
                                   self.config.scheduler.control_interval_s)

    # ------------------------------------------------------------------ control loop

    async def _control_loop(self) -> None:
        """Ticks until cancelled. A tick that meets a store outage (``STORE_FAULTS``) is
        abandoned and reported to the writer's ``StoreHealth`` (source ``"control"``); every
        store step of a tick is one transaction or a read, so the next tick simply redoes what
        is still due. After an outage, each campaign it paused gets a job error saying when."""
        interval = self.config.scheduler.control_interval_s
        assert self.writer is not None and self.store is not None
        health = self.writer.health
        async with trio.open_nursery() as builders:
            while True:
                delay = interval
                generation = self.store.campaigns_generation
                try:
                    await self._control_tick(builders)
                    health.ok("control")
                    await self._report_outages()
                except (Conflict, InvalidTransition, NotFound) as exc:
                    # A user action raced the engine's; the next tick sees the new state.
                    log_event(log, logging.INFO, "lifecycle race", error=str(exc))
                except STORE_FAULTS as exc:
                    self._control_errors += 1
                    delay = max(interval, health.fault("control", exc, self._sending))
                    await trio.sleep(delay)  # an outage's backoff is not cut short
                    continue
                await self._sleep_until_changed(generation, delay)

    async def _purge_unmatched_receipts(self) -> None:
        """Delete parked receipts older than ``store.unmatched_receipt_retention_s``, at a
        quarter of that period (at most hourly). Receipts that never match (another system's
        messages on the same account, a store restored from a backup) would otherwise pile up
        for ever, and every retry of the parked ones reads them again. A store outage skips a
        round; the next one catches up."""
        assert self.store is not None
        retention_s = self.config.store.unmatched_receipt_retention_s
        if retention_s <= 0:
            return
        every_s = min(3600.0, retention_s / 4)
        while True:
            await trio.sleep(every_s)
            try:
                purged = await self.store.purge_unmatched_receipts(
                    self.clock() - timedelta(seconds=retention_s))
            except STORE_FAULTS as exc:
                log_event(log, logging.WARNING, "unmatched receipts not purged",
                          error=describe(exc))
                continue
            if purged:
                log_event(log, logging.INFO, "purged unmatched receipts", count=purged,
                          older_than_s=retention_s)

    async def _sleep_until_changed(self, generation: int, delay_s: float) -> None:
        """Sleep ``delay_s``, or less when a campaign was created or changed status since
        the tick began (``AsyncStore.campaigns_generation``): a user's pause or cancel then
        reaches the routes, which take back what the pool still queues, within ``tick_s``
        instead of up to a whole control interval later (at full rate, thousands of
        messages went out after a cancel was acknowledged). At most one tick per ``tick_s``
        however many changes come."""
        assert self.store is not None
        with trio.move_on_after(delay_s):
            await self.store.wait_campaigns_changed(generation)
            await trio.sleep(min(self.config.scheduler.tick_s, delay_s))

    async def _report_outages(self) -> None:
        """One job error per campaign paused by each finished store outage ("store unavailable
        from T1 to T2"); kept in memory and tried again while the store refuses it."""
        assert self.store is not None and self.writer is not None
        health = self.writer.health
        outages = health.take_ended()
        for i, outage in enumerate(outages):
            done: set[int] = set()
            try:
                for cid in sorted(outage.campaigns):
                    await self.store.add_job_errors(
                        cid, [JobError(0, "store_unavailable", outage.message())], self.clock())
                    done.add(cid)
            except STORE_FAULTS:
                # The errors already written are not kept: writing them twice would
                # duplicate them.
                health.requeue([replace(outage, campaigns=outage.campaigns - done),
                                *outages[i + 1:]])
                raise
            log_event(log, logging.WARNING, "store outage recorded as job errors",
                      campaigns=len(outage.campaigns), failures=outage.failures,
                      started=outage.started_at.isoformat(), ended=outage.ended_at.isoformat())

    async def _control_tick(self, builders: trio.Nursery) -> None:
        """One pass over the active campaigns. Each campaign's step is contained: a lifecycle
        race or an unexpected error in one campaign is logged (and the latter counted in
        ``control_errors``) and the others still get their step, and the routes their new
        campaign sets. Only a store outage (``STORE_FAULTS``) abandons the whole tick: every
        other campaign would meet it too."""
        assert self.store is not None and self.service is not None
        now = self.clock()
        campaigns = await self.store.active_campaigns()
        self._active = len(campaigns)
        sending: dict[str, list[Campaign]] = defaultdict(list)
        remaining: dict[int, int] = {}
        self._sending = {c.id: c for c in campaigns
                         if c.id is not None and c.status is CampaignStatus.SENDING}
        assert self.writer is not None
        health = self.writer.health
        health.affect(self._sending)  # no-op unless the store is down
        if not self._sending:
            health.ok("claims")  # nothing to claim: a failed claim no longer matters
        for c in campaigns:
            try:
                counters = await self._control_campaign(c, now, builders)
            except STORE_FAULTS:
                raise
            except (Conflict, InvalidTransition, NotFound) as exc:
                # A user action raced the engine's; the next tick sees the new state.
                log_event(log, logging.INFO, "lifecycle race", campaign=str(c.external_id),
                          error=str(exc))
            except Exception as exc:
                self._control_errors += 1
                log_event(log, logging.ERROR, "control step failed for a campaign",
                          campaign=str(c.external_id), status=c.status.value,
                          error=redact_digits(f"{type(exc).__name__}: {exc}"))
            else:
                if counters is not None and c.id is not None:  # it goes on sending
                    remaining[c.id] = counters.pending
                    sending[c.esme].append(c)
        for name, route in self.routes.items():
            route.set_campaigns(sending.get(name, []), remaining)

    async def _control_campaign(self, c: Campaign, now: datetime,
                                builders: trio.Nursery) -> Counters | None:
        """One campaign's step of the control tick; its counters when it is Sending and goes
        on sending (its route feeds it), else None."""
        assert self.store is not None and self.service is not None and c.id is not None
        if c.status is CampaignStatus.PENDING:
            if is_expired(c, now):
                await self.service.expire(c.id)
            elif c.auto_start and may_start(c, now):
                await self.service.begin_build(c.id)
                self._start_builder(builders, c)
        elif c.status is CampaignStatus.BUILDING:
            self._start_builder(builders, c)
        elif c.status is CampaignStatus.SENDING:
            if c.esme not in self.routes:
                await self.service.fail(c.id, _unknown_route(c.esme))
            elif (c.window is not None and not window_open(c.window, now)
                  and not is_expired(c, now)):
                # Past its end time it is ended below instead (``_settle``): a window
                # pause first would make it end Paused, always Expired, when its end is
                # its window's close (a day's campaign in business hours).
                await self.service.window_closed(c.id)
            else:
                counters = await self.store.counters(c.id)
                if not await self._settle(c, counters, now):
                    return counters
        elif c.status is CampaignStatus.PAUSED:
            if is_expired(c, now):
                await self._end(c, await self.store.counters(c.id))
            elif (c.paused_by is PausedBy.WINDOW and c.window is not None
                  and window_open(c.window, now)):
                await self.service.window_opened(c.id)
        return None

    async def _settle(self, c: Campaign, counters: Counters, now: datetime) -> bool:
        """Finish or expire a Sending campaign when its time has come; True if it did.

        Bulk: Done once every recipient was processed (a Trigger campaign's Held recipients
        count as not processed); at the end time, ``_end``. Transactional: open until its end
        time, since messages keep arriving by API."""
        assert self.service is not None and c.id is not None
        all_processed = (counters.pending == 0 and counters.inflight == 0
                         and counters.held == 0)
        if c.kind is CampaignKind.BULK and all_processed and self.routes[c.esme].exhausted(c.id):
            await self.service.finish(c.id)
            log_event(log, logging.INFO, "campaign done", campaign=str(c.external_id),
                      total=counters.total, sent=counters.sent, failed=counters.failed)
            return True
        if is_expired(c, now):
            await self._end(c, counters)
            return True
        return False

    async def _end(self, c: Campaign, counters: Counters) -> None:
        """The end time passed. Done when nothing released was left unsent: a transactional
        campaign with everything processed, or a Trigger campaign whose only leftovers are
        recipients never triggered (marked "not triggered"); otherwise Expired, and the unsent
        recipients are marked "campaign expired" (Held ones "not triggered").

        A campaign Paused at its end time (by hand, or by its daily window) is Expired: the
        lifecycle has no Paused -> Done, and trying it failed every control tick, which left
        the campaign Paused for ever and stopped the tick before the campaigns after it."""
        assert self.store is not None and self.service is not None and c.id is not None
        released_done = (c.status is CampaignStatus.SENDING
                         and counters.pending == 0 and counters.inflight == 0)
        if released_done and c.kind is CampaignKind.TRANSACTIONAL:
            await self.service.finish(c.id, "end time reached, all messages processed")
        elif released_done and c.mode is CampaignMode.TRIGGER:
            await self.service.finish(c.id, "end time reached; every triggered message "
                                      f"processed, {counters.held} recipients not triggered")
        else:
            await self.service.expire(c.id)
        log_event(log, logging.INFO, "campaign ended", campaign=str(c.external_id),
                  total=counters.total, sent=counters.sent, not_triggered=counters.held,
                  unsent=counters.pending + counters.inflight)

    def _start_builder(self, nursery: trio.Nursery, campaign: Campaign) -> None:
        assert campaign.id is not None
        if campaign.id in self._builders:
            return
        self._builders.add(campaign.id)
        nursery.start_soon(self._build, campaign)

    async def _build(self, campaign: Campaign) -> None:
        assert self.store is not None and self.service is not None and campaign.id is not None
        try:
            # The control tick works from the list it read at its start: the build this tick
            # saw Building may have finished since (the campaign is Sending now, its
            # recipients New). Building again would delete them and ingest them anew, and a
            # tick in between would see nothing pending and finish the campaign Done unsent.
            if (await self.service.get(campaign.id)).status is not CampaignStatus.BUILDING:
                return
            if self.membership is not None and not await self.membership.claim_build(
                    campaign.id):
                return  # another live cluster node is building it (issue 8)
            if campaign.esme not in self.routes:
                # Nothing could send it: fail it now, not after ingesting its whole file.
                reason = _unknown_route(campaign.esme)
                await self.store.add_job_errors(
                    campaign.id, [JobError(0, "unknown_route", reason)], self.clock())
                await self.service.fail(campaign.id, reason)
                return
            if campaign.kind is CampaignKind.TRANSACTIONAL:
                await self.service.mark_built(campaign.id, "transactional: messages arrive by API")
                return
            built: IngestSummary | None = None
            started_s = trio.current_time()
            self.ingest_stats.started()
            try:
                built = await build_recipients(campaign, self.store, self._ingest_options,
                                               self.clock)
            except BuildFailed as exc:
                await self.service.fail(campaign.id, f"build failed: {exc}")
                return
            finally:
                self.ingest_stats.finished(built, trio.current_time() - started_s)
            summary = built
            try:
                await self.service.mark_built(campaign.id, summary.message())
            except InvalidTransition:
                if (await self.service.get(campaign.id)).status is CampaignStatus.CANCELLED:
                    # Cancelled while building: the cancel marked what was stored by then
                    # (up to unsent_mark_rows); the rest, and the rows stored after it, are
                    # marked now in chunks, and by the unsent marking's rounds after that.
                    assert self.unsent is not None
                    await self.unsent.mark_campaign(campaign.id)
                raise
        except (Conflict, InvalidTransition) as exc:
            log_event(log, logging.INFO, "build outcome not applied",
                      campaign=str(campaign.external_id), error=str(exc))
        except STORE_FAULTS as exc:
            # Still Building: the next control tick starts the build over (it deletes the
            # partial rows first), once the store takes writes again.
            self._build_store_fault(campaign, exc, "build interrupted by a store fault")
        except Exception as exc:
            # A defect, or an error of the store that is no outage (a constraint violation):
            # building again would meet it again. It fails this campaign only; escaping, it
            # would end the builders' nursery and with it the control loop and the engine.
            await self._fail_build(campaign, exc)
        finally:
            self._builders.discard(campaign.id)

    def _build_store_fault(self, campaign: Campaign, exc: BaseException, message: str) -> None:
        """A store fault during a build: reported to the store's health, logged; the campaign
        stays Building and the next control tick builds it again."""
        if self.writer is not None:
            self.writer.health.fault("control", exc)
        log_event(log, logging.WARNING, message, campaign=str(campaign.external_id),
                  error=describe(exc))

    async def _fail_build(self, campaign: Campaign, exc: Exception) -> None:
        """A build ended by an unexpected error: logged (type and redacted text: the error
        may quote a line of the file), recorded as a job error, and the campaign Failed. A
        store fault meanwhile leaves it Building: the next control tick builds it again."""
        assert self.store is not None and self.service is not None and campaign.id is not None
        self._control_errors += 1
        error = redact_digits(f"{type(exc).__name__}: {exc}")
        log_event(log, logging.ERROR, "build failed with an unexpected error",
                  campaign=str(campaign.external_id), error_type=type(exc).__name__,
                  error=error)
        reason = f"build failed: internal error ({error})"
        try:
            await self.store.add_job_errors(
                campaign.id, [JobError(0, "build_error", reason)], self.clock())
            await self.service.fail(campaign.id, reason)
        except (Conflict, InvalidTransition, NotFound) as race:
            log_event(log, logging.INFO, "build outcome not applied",
                      campaign=str(campaign.external_id), error=str(race))
        except STORE_FAULTS as fault:
            self._build_store_fault(campaign, fault, "failed build not recorded: store fault")
        except Exception as again:
            log_event(log, logging.ERROR, "failed build not recorded",
                      campaign=str(campaign.external_id),
                      error=redact_digits(f"{type(again).__name__}: {again}"))

    # ------------------------------------------------------------------ diagnostics

    async def diagnostics(self) -> dict[str, Any]:
        """What the Message Center banner needs: core up, store reachable, binds per ESME with
        the last error, campaigns paused or stalled (``dispatch.observability.diagnostics``)."""
        report = await engine_diagnostics(self)
        if self.writer is not None and self.writer.health.down:
            # A store that reads but cannot write (a full disk) is not reachable for the
            # banner; the campaigns it holds up are paused by the fault (kept in memory: the
            # store cannot record it) and resume by themselves (dispatch.store.faults).
            st = self.writer.health.statistics()
            since = st.failing_since.isoformat() if st.failing_since else None
            report["store"].update({"reachable": False, "writable": False,
                                    "error": st.last_error, "failingSince": since,
                                    "failedWrites": st.failures})
            known = self._sending
            paused = [str(known[i].external_id) for i in st.affected_campaigns if i in known]
            campaigns = report.setdefault("campaigns", {})
            campaigns["pausedByFault"] = {"count": len(paused), "campaigns": paused[:50],
                                          "reason": f"store unavailable: {st.last_error}",
                                          "since": since}
            report["status"] = "down"
            report["up"] = False
        return report
