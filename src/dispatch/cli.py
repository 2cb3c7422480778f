"""The ``dispatch`` command: serve, send, demo, simulate, keys, migrate, bench.

    dispatch serve [--config FILE]          run the engine (API, pools, scheduler) until SIGTERM
    dispatch send FILE --text T --sender S  one-shot campaign with a progress bar and a summary
    dispatch demo [--recipients N]          the main job on embedded defaults (see README)
    dispatch simulate [options]             the SMSC simulator alone
    dispatch keys create --role ROLE        print a new API key once
    dispatch migrate [--config FILE]        bring the store's schema up to date, then exit
    dispatch bench [--quick] [--out DIR]    the benchmark suite: JSON, plots, report
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sqlite3
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import trio

from dispatch import fastpath
from dispatch.benchsuite.options import add_arguments as add_bench_arguments
from dispatch.campaigns.errors import ValidationError
from dispatch.campaigns.model import Campaign, CampaignStatus
from dispatch.configload import ConfigError
from dispatch.engine.config import SIMULATOR_ROUTE, EngineConfig, load_config
from dispatch.engine.core import Engine
from dispatch.engine.oneshot import OneShotResult, run_one_shot
from dispatch.logs import configure_logging, redact_digits


def _config(args: argparse.Namespace, data_dir: str | None = None) -> EngineConfig:
    try:
        return load_config(getattr(args, "config", None),
                           data_dir=data_dir or getattr(args, "data_dir", None))
    except ConfigError as exc:
        raise SystemExit(f"config error: {exc}") from exc


# ------------------------------------------------------------------ serve

async def _serve(config: EngineConfig) -> None:
    engine = Engine(config)
    # The receiver is open before start-up (store recovery, binds), so a SIGTERM then (a
    # service manager stopping a node that is still starting) waits in it and ends in the
    # same graceful stop instead of the default action killing the process.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            async for _ in signals:
                engine.stop()
                break
            await engine.wait_stopped()


def _store_errors(config: EngineConfig) -> tuple[type[Exception], ...]:
    """What a store that cannot be opened or reached raises (file system, SQLite, server)."""
    errors: tuple[type[Exception], ...] = (OSError, sqlite3.Error)
    if config.store.dsn:
        import psycopg

        errors += (psycopg.Error,)  # psycopg_pool.PoolTimeout (no server at start) included
    return errors


def _first_leaf(group: BaseExceptionGroup[Exception]) -> BaseException:
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    configure_logging(config.log_level, config.log_format)
    where = "PostgreSQL" if config.store.dsn else config.store.path
    try:
        trio.run(_serve, config)
    except* _store_errors(config) as group:
        # The whole story (tracebacks) goes to the log as one JSON line; the operator's
        # terminal or service manager gets one line that says what failed.
        logging.getLogger("dispatch.cli").critical("store failed", exc_info=group)
        cause = _first_leaf(group)
        raise SystemExit(f"serve: store {where} failed: {type(cause).__name__}: "
                         f"{redact_digits(str(cause))}".splitlines()[0]) from None
    return 0


# ------------------------------------------------------------------ send / demo

async def _send(config: EngineConfig, campaign_kwargs: dict[str, object],
                quiet: bool) -> tuple[OneShotResult, Engine]:
    engine = Engine(replace(config, api_enabled=False))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        esme = campaign_kwargs.pop("esme", None) or next(iter(engine.routes))
        campaign = Campaign(esme=str(esme), **campaign_kwargs)  # type: ignore[arg-type]
        try:
            result = await run_one_shot(engine, campaign, progress=None if quiet else sys.stderr)
        finally:
            engine.stop()
        await engine.wait_stopped()
    return result, engine


def _print_summary(result: OneShotResult, engine: Engine) -> None:
    c = result.counters
    rate = c.processed / result.send_s if result.send_s > 0 else 0.0
    status = result.campaign.status
    why = f" ({result.reason})" if result.reason and status is not CampaignStatus.DONE else ""
    print(f"campaign {result.campaign.external_id}: {status.value}{why}")
    print(f"  recipients {c.total}  sent {c.sent}  failed {c.failed}  ambiguous {c.ambiguous}")
    print(f"  receipts: delivered {c.delivered}  undelivered {c.undelivered}  "
          f"unknown {c.unknown}  job errors {c.job_errors}")
    print(f"  sending took {result.send_s:.2f} s ({rate:,.0f} msg/s); receipts settled "
          f"{result.receipts_wait_s:.2f} s later; fast path: {fastpath.IMPLEMENTATION}")
    if engine.simulator is not None:
        st = engine.simulator.stats
        print(f"  simulator saw {st.submits} submit_sm, sent {st.receipts_sent} receipts, "
              f"max outstanding per session {st.max_outstanding}")


def cmd_send(args: argparse.Namespace) -> int:
    config = _config(args)
    configure_logging(config.log_level if args.verbose else "warning", config.log_format)
    path = Path(args.file).resolve()
    if not path.is_file():
        raise SystemExit(f"no such file: {args.file}")
    kwargs: dict[str, object] = {"sender": args.sender, "text": args.text, "author": "cli",
                                 "source_path": str(path), "esme": args.route,
                                 "name": args.name or path.name}
    invalid: dict[str, str] = {}
    outcome: tuple[OneShotResult, Engine] | None = None
    try:
        outcome = trio.run(_send, config, kwargs, args.quiet)
    except* ValidationError as group:  # the campaign was refused before anything was sent
        for exc in group.exceptions:  # ValidationErrors (the nursery in _send adds one level)
            invalid.update(exc.errors if isinstance(exc, ValidationError) else {})
    if outcome is None:
        raise SystemExit("invalid campaign: " + "; ".join(f"{field}: {message}"
                                                          for field, message in invalid.items()))
    result, engine = outcome
    _print_summary(result, engine)
    return 0 if result.campaign.status.value == "Done" else 1


def generate_recipients(path: Path, count: int, seed: int = 7) -> int:
    """A realistic demo file: mixed formats, ~5% invalid lines, ~3% duplicates."""
    rng = random.Random(seed)
    numbers = [f"79{rng.randrange(10**9):09d}" for _ in range(count)]
    lines = []
    for i, n in enumerate(numbers):
        style = i % 4
        if style == 0:
            lines.append("+" + n)
        elif style == 1:
            lines.append(f"+{n[0]} ({n[1:4]}) {n[4:7]}-{n[7:9]}-{n[9:]}")
        elif style == 2:
            lines.append("00" + n)
        else:
            lines.append(n)
        if rng.random() < 0.05:
            lines.append(rng.choice(["12345", "+7 912 ABC 45 67", "", "8" * 20]))
        if rng.random() < 0.03:
            lines.append(n)
    path.write_text("\n".join(lines) + "\n")
    return count


def cmd_demo(args: argparse.Namespace) -> int:
    count = 20_000 if args.quick else args.recipients
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="dispatch-demo-")
    config = _config(args, data_dir)
    config = replace(config, store=replace(config.store, path=str(Path(data_dir)
                                                                  / "dispatch.sqlite3")))
    configure_logging("warning", config.log_format)
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    file = Path(data_dir) / "demo-recipients.txt"
    generate_recipients(file, count)
    print(f"demo: {count} generated recipients in {file} -> built-in SMSC simulator "
          f"(route {SIMULATOR_ROUTE!r}), SQLite store in {data_dir}")
    kwargs: dict[str, object] = {
        "sender": "DispatchDemo", "author": "demo", "source_path": str(file), "name": "demo",
        "text": "Hello from dispatch! Your order has shipped.",
    }
    result, engine = trio.run(_send, config, kwargs, args.quiet)
    _print_summary(result, engine)
    sim = engine.simulator
    ok = result.campaign.status.value == "Done" and sim is not None \
        and sim.stats.submits == result.counters.sent + result.counters.ambiguous \
        and result.counters.delivered == result.counters.sent
    print("demo: OK, every accepted submit was delivered and counted" if ok
          else "demo: FAILED, counters disagree with the simulator")
    return 0 if ok else 1


# ------------------------------------------------------------------ simulate / keys

def cmd_simulate(args: argparse.Namespace) -> int:
    from dispatch.simulator.__main__ import main as simulator_main

    return simulator_main(args.rest, prog="dispatch simulate")


def cmd_keys(args: argparse.Namespace) -> int:
    from control.keys_cli import build_parser as build_keys_parser
    from control.keys_cli import run_keys

    keys_args = build_keys_parser().parse_args(args.rest)
    # --config / --data-dir after the action (``keys create --role R --config X``) count as
    # much as before it (``keys --config X create ...``); given twice, the later one wins.
    for name in ("config", "data_dir"):
        if name in vars(keys_args):
            setattr(args, name, getattr(keys_args, name))
    return run_keys(keys_args, _config(args).control.keys_path)


def cmd_bench(args: argparse.Namespace) -> int:
    from dispatch.benchsuite.runner import run_from_args

    return run_from_args(args)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending schema migrations (each node also does it at start; this lets an
    operator do it once, before rolling out new nodes)."""
    from dispatch.store import migrate_store

    config = _config(args)
    where = "PostgreSQL" if config.store.dsn else config.store.path
    try:
        before, after = migrate_store(config.store)
    except _store_errors(config) as exc:
        raise SystemExit(f"migrate: store {where} failed: {exc}") from exc
    print(f"store schema {where}: version {before} -> {after}"
          + ("" if after > before else " (already current)"))
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dispatch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", help="TOML config file (env DISPATCH__* overrides it)")
        sp.add_argument("--data-dir", help="override data_dir")

    sp = sub.add_parser("serve", help="run the engine")
    common(sp)
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("send", help="one-shot campaign from a recipient file")
    common(sp)
    sp.add_argument("file")
    sp.add_argument("--text", required=True)
    sp.add_argument("--sender", required=True)
    sp.add_argument("--route", help="ESME route (default: the first)")
    sp.add_argument("--name")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--verbose", action="store_true", help="engine logs at the config level")
    sp.set_defaults(func=cmd_send)

    sp = sub.add_parser("demo", help="the main job on embedded defaults")
    common(sp)
    sp.add_argument("--recipients", type=_positive_int, default=100_000)
    sp.add_argument("--quick", action="store_true", help="20000 recipients")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=cmd_demo)

    # Its options are the simulator's own (``main`` hands them over): no -h of this parser.
    sp = sub.add_parser("simulate", help="the SMSC simulator (options: --help)", add_help=False)
    sp.add_argument("rest", nargs=argparse.REMAINDER)
    sp.set_defaults(func=cmd_simulate)

    sp = sub.add_parser("migrate", help="apply pending store schema migrations and exit")
    common(sp)
    sp.set_defaults(func=cmd_migrate)

    sp = sub.add_parser("keys", help="API keys: create --role ROLE | revoke KEY_ID | list")
    common(sp)
    sp.add_argument("rest", nargs=argparse.REMAINDER)
    sp.set_defaults(func=cmd_keys)

    sp = sub.add_parser("bench", help="benchmark suite (--quick: under a minute; --help)")
    add_bench_arguments(sp)
    sp.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # A REMAINDER positional takes nothing when the first of its words is an option
    # (``dispatch simulate --port 2775``): argparse leaves those as unrecognised. For the
    # commands that pass their words on (simulate, keys) they are the first of those words
    # (argparse reads left to right, and the remainder starts at the first positional).
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        if not hasattr(args, "rest"):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        args.rest = unknown + list(args.rest)
    logging.captureWarnings(True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
