"""SMPP over TLS: the pool binds to the simulator's TLS listener with a certificate made in the
test by ``trustme``; a wrong CA, a wrong hostname and a missing client certificate each fail
with a clear bind error and never bind."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trustme

from dispatch.simulator import SimulatorConfig, SmscSimulator, TlsServerConfig
from dispatch.transport.config import TlsConfig
from dispatch.transport.pool import SubmitStatus
from pool_harness import (
    FAST_RECONNECT,
    collect,
    esme_config,
    messages,
    start_pool,
    wait_until,
    with_simulator,
)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    """A CA, a server certificate for ``smsc.test`` and 127.0.0.1, a client certificate, and
    an unrelated CA; PEM files under tmp_path."""
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("smsc.test", "127.0.0.1")
    named_only = ca.issue_cert("smsc.test")
    client = ca.issue_cert("esme.test")
    files = {
        "ca": ca.cert_pem, "other_ca": other_ca.cert_pem,
        "server": server.private_key_and_cert_chain_pem,
        "named_only": named_only.private_key_and_cert_chain_pem,
        "client": client.private_key_and_cert_chain_pem,
    }
    paths = {}
    for name, blob in files.items():
        path = tmp_path / f"{name}.pem"
        blob.write_to_path(str(path))
        paths[name] = str(path)
    return paths


def _tls_sim(certfile: str, cafile: str | None = None) -> SimulatorConfig:
    return SimulatorConfig(port=0, tls=TlsServerConfig(certfile=certfile, cafile=cafile))


def test_pool_binds_over_tls_sends_and_gets_receipts(pki: dict[str, str]) -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(
            sim, binds=2, window=32, tls=TlsConfig(enabled=True, cafile=pki["ca"])), bound=2)
        nursery.start_soon(pool.submit_many, messages(200))
        got = await collect(pool, outcomes=200, receipts=200)
        assert got.by_status() == {SubmitStatus.ACCEPTED: 200}
        assert got.duplicate_outcomes == 0
        ids = {mid for o in got.outcomes.values() for mid in o.message_ids}
        assert {r.message_id for r in got.receipts} == ids
        assert sim.stats.tls_handshakes == 2 and sim.stats.tls_handshake_failures == 0
        assert sim.stats.submits == 200 and sim.stats.binds_ok == 2
        pool.close()

    with_simulator(body, _tls_sim(pki["server"]))


async def _expect_bind_failure(sim: SmscSimulator, nursery: trio.Nursery, tls: TlsConfig,
                               *words: str) -> None:
    pool = await start_pool(nursery, esme_config(sim, tls=tls, reconnect=FAST_RECONNECT),
                            bound=0)
    got = await collect(pool, bind_failures=1)
    failure = got.bind_failures[0]
    assert failure.reason.startswith(f"TLS handshake with 127.0.0.1:{sim.port} failed: ")
    for word in words:
        assert word in failure.reason, failure.reason
    assert failure.command_status is None
    await wait_until(lambda: sim.stats.tls_handshake_failures >= 1)
    stats = pool.statistics()
    assert stats.binds_up == 0 and stats.bind_failures >= 1
    assert stats.last_bind_error == failure.reason
    assert sim.stats.binds_ok == 0 and sim.stats.tls_handshakes == 0
    pool.close()


def test_wrong_ca_fails_with_a_clear_bind_error(pki: dict[str, str]) -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        await _expect_bind_failure(sim, nursery, TlsConfig(enabled=True, cafile=pki["other_ca"]),
                                   "certificate verify failed", "unable to get local issuer")

    with_simulator(body, _tls_sim(pki["server"]))


def test_hostname_is_checked(pki: dict[str, str]) -> None:
    """A certificate valid for smsc.test only: connecting to 127.0.0.1 fails the check,
    naming smsc.test as the expected server name passes it."""
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        await _expect_bind_failure(sim, nursery, TlsConfig(enabled=True, cafile=pki["ca"]),
                                   "certificate verify failed", "mismatch")
        pool = await start_pool(nursery, esme_config(
            sim, tls=TlsConfig(enabled=True, cafile=pki["ca"], server_hostname="smsc.test")))
        nursery.start_soon(pool.submit_many, messages(10))
        got = await collect(pool, outcomes=10)
        assert got.by_status() == {SubmitStatus.ACCEPTED: 10}
        pool.close()

    with_simulator(body, _tls_sim(pki["named_only"]))


def test_verify_off_accepts_any_certificate(pki: dict[str, str]) -> None:
    """``verify=False`` (a lab SMSC with a throwaway certificate) still encrypts and binds."""
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(
            sim, tls=TlsConfig(enabled=True, cafile=pki["other_ca"], verify=False)))
        nursery.start_soon(pool.submit_many, messages(5))
        got = await collect(pool, outcomes=5)
        assert got.by_status() == {SubmitStatus.ACCEPTED: 5}
        assert sim.stats.tls_handshakes == 1
        pool.close()

    with_simulator(body, _tls_sim(pki["named_only"]))


def test_mutual_tls_needs_the_client_certificate(pki: dict[str, str]) -> None:
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        no_cert = esme_config(sim, reconnect=FAST_RECONNECT,
                              tls=TlsConfig(enabled=True, cafile=pki["ca"]))
        pool = await start_pool(nursery, no_cert, bound=0)
        # TLS 1.3: the client learns of the refusal only when it reads, i.e. at bind
        got = await collect(pool, bind_failures=1)
        assert got.bind_failures[0].command_status is None
        assert "TLS error" in got.bind_failures[0].reason, got.bind_failures[0].reason
        await wait_until(lambda: sim.stats.tls_handshake_failures >= 1)
        assert sim.stats.binds_ok == 0
        pool.close()
        pool = await start_pool(nursery, esme_config(sim, tls=TlsConfig(
            enabled=True, cafile=pki["ca"], certfile=pki["client"])))
        nursery.start_soon(pool.submit_many, messages(5))
        got = await collect(pool, outcomes=5)
        assert got.by_status() == {SubmitStatus.ACCEPTED: 5}
        pool.close()

    with_simulator(body, _tls_sim(pki["server"], cafile=pki["ca"]))


def test_plain_client_against_tls_listener_is_refused(pki: dict[str, str]) -> None:
    """An ESME that forgot to enable TLS gets a bind error, the simulator a failed handshake."""
    async def body(sim: SmscSimulator, nursery: trio.Nursery) -> None:
        pool = await start_pool(nursery, esme_config(sim, bind_timeout_s=2.0,
                                                     reconnect=FAST_RECONNECT), bound=0)
        got = await collect(pool, bind_failures=1)
        assert got.bind_failures[0].reason
        await wait_until(lambda: sim.stats.tls_handshake_failures >= 1)
        assert sim.stats.binds_ok == 0
        pool.close()

    with_simulator(body, _tls_sim(pki["server"]))
