"""``python -m dispatch.benchsuite``: the same as ``dispatch bench``."""

from __future__ import annotations

import argparse
import shlex
import sys

from dispatch.benchsuite.options import add_arguments, config_from_args
from dispatch.benchsuite.runner import main as run_main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dispatch.benchsuite",
                                description="the dispatch benchmark suite")
    add_arguments(p)
    args = p.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    return run_main(config_from_args(args),
                    command=shlex.join(["python", "-m", "dispatch.benchsuite", *argv]))


if __name__ == "__main__":
    sys.exit(main())
