"""Command-line options of ``dispatch bench`` and the typed config they become.

Kept apart from the runner so ``dispatch --help`` builds its parser without importing the
benchmark machinery (matplotlib, smpplib, the engine).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

SECTIONS = ("ingest", "codec", "pool", "e2e", "api")
PROFILES = ("quick", "full")
#: messages a run may send to a real SMSC (``--target``) unless ``--max-messages`` says more
DEFAULT_MAX_MESSAGES = 100


@dataclass(frozen=True)
class Target:
    """A real SMSC to aim the SMPP sections at instead of the built-in simulator."""

    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    tps_cap: float = 0.0  # shared by every bind; 0 = no cap (the SMSC's throttling applies)
    binds: int = 1
    window: int = 10
    destinations: tuple[str, ...] = ()  # numbers the test messages go to, round-robin
    source_addr: str = "Bench"

    def describe(self) -> str:
        return f"{self.host}:{self.port} as {self.system_id!r}"


@dataclass(frozen=True)
class SuiteConfig:
    """Everything one ``dispatch bench`` run does; written into the result JSON."""

    profile: str = "quick"
    sections: tuple[str, ...] = SECTIONS
    out_dir: str = "bench-results"
    target: Target | None = None
    max_messages: int = DEFAULT_MAX_MESSAGES
    dry_run: bool = False
    plots: bool = True
    api_rps: float = 0.0  # 0: the profile's default offered load
    seed: int = 2026
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        return self.profile == "quick"


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError("--target is HOST:PORT")
    return host.strip("[]"), int(port)


def _sections(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``dispatch bench`` (also used by ``python -m dispatch.benchsuite``)."""
    p.add_argument("--quick", action="store_const", const="quick", dest="profile",
                   help="small sizes: the whole suite in under a minute (CI smoke test)")
    p.add_argument("--full", action="store_const", const="full", dest="profile",
                   help="measurement sizes (default)")
    p.add_argument("--only", type=_sections, metavar="S[,S...]",
                   help=f"run only these sections ({', '.join(SECTIONS)})")
    p.add_argument("--skip", type=_sections, metavar="S[,S...]", help="skip these sections")
    p.add_argument("--out", default="bench-results", metavar="DIR",
                   help="where result.json, the plots and report.md/html go")
    p.add_argument("--no-plots", action="store_true", help="JSON and summary only")
    p.add_argument("--api-rps", type=float, default=0.0,
                   help="offered API load in requests/s (default: 50 quick, 200 full)")
    p.add_argument("--seed", type=int, default=2026)
    g = p.add_argument_group("real SMSC (instead of the built-in simulator)")
    g.add_argument("--target", type=_host_port, metavar="HOST:PORT")
    g.add_argument("--system-id")
    g.add_argument("--password")
    g.add_argument("--system-type", default="")
    g.add_argument("--tps-cap", type=float, default=0.0,
                   help="submits/s shared by all binds (default: none)")
    g.add_argument("--binds", type=int, default=1, help="binds toward --target (default 1)")
    g.add_argument("--window", type=int, default=10,
                   help="submit window per bind toward --target (default 10)")
    g.add_argument("--to", action="append", default=[], metavar="NUMBER",
                   help="destination of the test messages (repeatable; required with --target)")
    g.add_argument("--source-addr", default="Bench", help="sender (alphanumeric or number)")
    g.add_argument("--max-messages", type=int, default=DEFAULT_MAX_MESSAGES,
                   help=f"safety cap on messages sent to --target (default {DEFAULT_MAX_MESSAGES})")
    g.add_argument("--dry-run", action="store_true",
                   help="print what would run and be sent; connect to nothing")


def config_from_args(args: argparse.Namespace) -> SuiteConfig:
    """Validate the options into a ``SuiteConfig``; ``SystemExit`` with a message if wrong."""
    sections: tuple[str, ...] = args.only or SECTIONS
    if args.skip:
        sections = tuple(s for s in sections if s not in args.skip)
    if not sections:
        raise SystemExit("dispatch bench: --only/--skip leave no section to run")
    if args.max_messages < 1:
        raise SystemExit("dispatch bench: --max-messages must be at least 1")
    if args.api_rps < 0 or args.api_rps != args.api_rps:  # negative or NaN
        raise SystemExit("dispatch bench: --api-rps must be a positive rate (0: the default)")
    target = None
    if args.target:
        if not args.system_id or args.password is None:
            raise SystemExit("dispatch bench: --target needs --system-id and --password")
        if not args.to:
            raise SystemExit("dispatch bench: --target needs --to NUMBER (where the test "
                             "messages go; never random numbers on a real network)")
        target = Target(host=args.target[0], port=args.target[1], system_id=args.system_id,
                        password=args.password, system_type=args.system_type,
                        tps_cap=max(0.0, args.tps_cap), binds=max(1, args.binds),
                        window=max(1, args.window), destinations=tuple(args.to),
                        source_addr=args.source_addr)
    return SuiteConfig(profile=args.profile or "full", sections=sections, out_dir=args.out,
                       target=target, max_messages=args.max_messages, dry_run=args.dry_run,
                       plots=not args.no_plots, api_rps=args.api_rps, seed=args.seed)
