"""``python -m dispatch.simulator``: run the SMSC simulator from the command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

import trio

from dispatch import interpreter
from dispatch.simulator.config import (
    Account,
    FaultConfig,
    OutcomeRule,
    SimulatorConfig,
    SubmitStatusRule,
    TlsServerConfig,
)
from dispatch.simulator.server import SmscSimulator


def _account(text: str) -> Account:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError("account is SYSTEM_ID:PASSWORD[:THROTTLE_TPS]")
    return Account(parts[0], parts[1], float(parts[2]) if len(parts) == 3 else 0.0)


def _outcome(text: str) -> OutcomeRule:
    stat, _, rest = text.partition("=")
    if rest.startswith("/"):
        return OutcomeRule(stat.upper(), pattern=rest[1:])
    return OutcomeRule(stat.upper(), share=float(rest or 1))


def _rejection(text: str) -> SubmitStatusRule:
    pattern, _, status = text.partition("=")
    return SubmitStatusRule(pattern, int(status, 0) if status else 0x0B)


def _parser(prog: str = "python -m dispatch.simulator") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog,
                                description="SMPP 3.4 SMSC simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2775)
    p.add_argument("--account", action="append", type=_account, default=[],
                   help="SYSTEM_ID:PASSWORD[:THROTTLE_TPS] (repeatable; default dispatch:secret)")
    p.add_argument("--latency-s", type=float, default=0.0, help="submit_sm_resp latency")
    p.add_argument("--receipt-delay-s", type=float, default=0.0)
    p.add_argument("--no-receipts", action="store_true")
    p.add_argument("--outcome", action="append", type=_outcome, default=[],
                   help="STAT=SHARE or STAT=/REGEX, e.g. DELIVRD=0.9 UNDELIV=0.1 EXPIRED=/999$")
    p.add_argument("--reject", action="append", type=_rejection, default=[],
                   help="REGEX=STATUS: answer submits to matching numbers with STATUS")
    p.add_argument("--id-format", choices=["hex", "decimal"], default="hex")
    p.add_argument("--receipt-id-format", choices=["hex", "decimal"], default=None)
    p.add_argument("--id-width", type=int, default=0)
    p.add_argument("--drop-after-pdus", type=int, default=0)
    p.add_argument("--stall-after-pdus", type=int, default=0)
    p.add_argument("--garbage-after-pdus", type=int, default=0)
    p.add_argument("--faulty-sessions", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-log", action="store_true", help="do not keep a record per submit")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve SMPP over TLS")
    p.add_argument("--tls-key", help="PEM private key (default: in --tls-cert)")
    p.add_argument("--tls-client-ca", help="require client certificates signed by this CA")
    p.add_argument("--deliver-window", type=int, default=1000,
                   help="unacknowledged deliver_sm per session (0: no limit)")
    p.add_argument("--deliver-resp-timeout-s", type=float, default=30.0,
                   help="redeliver a deliver_sm not answered within this (0: never)")
    p.add_argument("--redelivery-delay-s", type=float, default=1.0)
    p.add_argument("--deliver-max-attempts", type=int, default=10)
    p.add_argument("--port-file", help="write the listening port here once listening "
                   "(with --port 0: a test or bench starting the simulator as a process)")
    p.add_argument("--stats-json", help="write the statistics (submit log included) here "
                   "when stopped (SIGINT or SIGTERM), so a test in another process can reconcile")
    return p


def parse_args(argv: list[str] | None = None) -> SimulatorConfig:
    p = _parser()
    return _config(p.parse_args(argv), p)


def _config(a: argparse.Namespace, p: argparse.ArgumentParser) -> SimulatorConfig:
    if (a.tls_key or a.tls_client_ca) and not a.tls_cert:
        p.error("--tls-key and --tls-client-ca need --tls-cert")
    tls = (TlsServerConfig(certfile=a.tls_cert, keyfile=a.tls_key, cafile=a.tls_client_ca)
           if a.tls_cert else None)
    try:
        return SimulatorConfig(
            host=a.host, port=a.port, tls=tls,
            accounts=tuple(a.account) or (Account("dispatch", "secret"),),
            response_latency_s=a.latency_s, receipt_delay_s=a.receipt_delay_s,
            receipts=not a.no_receipts,
            outcomes=tuple(a.outcome) or (OutcomeRule("DELIVRD", share=1.0),),
            submit_status_rules=tuple(a.reject), message_id_format=a.id_format,
            receipt_id_format=a.receipt_id_format, message_id_width=a.id_width,
            faults=FaultConfig(drop_after_pdus=a.drop_after_pdus,
                               stall_after_pdus=a.stall_after_pdus,
                               garbage_after_pdus=a.garbage_after_pdus,
                               faulty_sessions=a.faulty_sessions),
            seed=a.seed, log_submits=not a.no_log, deliver_window=a.deliver_window,
            deliver_resp_timeout_s=a.deliver_resp_timeout_s,
            redelivery_delay_s=a.redelivery_delay_s, deliver_max_attempts=a.deliver_max_attempts)
    except ValueError as exc:  # a value the config refuses (a port out of range, say)
        p.error(str(exc))


def stats_document(sim: SmscSimulator) -> dict[str, object]:
    """The statistics as JSON-able data: plain counters, per-account maxima, the submit log
    (one list per record, ``SubmitRecord`` field order; destinations are hashes)."""
    st = sim.stats
    return {
        "port": sim.port, "submits": st.submits, "duplicates": st.duplicates,
        "submits_by_status": {str(k): v for k, v in st.submits_by_status.items()},
        "max_tps": st.max_tps, "max_tps_by_account": dict(st.max_tps_by_account),
        "receipts_sent": st.receipts_sent, "redeliveries": st.redeliveries,
        "binds_ok": st.binds_ok, "connections": st.connections,
        "submit_log_fields": list(st.submit_log[0]._fields) if st.submit_log else [],
        "submit_log": [list(r) for r in st.submit_log],
    }


def _write_atomically(path: str, text: str) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None, prog: str = "python -m dispatch.simulator") -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = _parser(prog)
    args = p.parse_args(argv)
    sim = SmscSimulator(_config(args, p))

    async def serve() -> None:
        # SIGINT and SIGTERM end the run cleanly, so the statistics are complete when written.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(sim.run)
                interpreter.tune()  # a long-running process at full rate, like the engine
                if args.port_file:
                    _write_atomically(args.port_file, f"{sim.port}\n")
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(serve)
    finally:
        if args.stats_json:
            _write_atomically(args.stats_json, json.dumps(stats_document(sim)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
