"""`python -m supervisor COMMAND`: the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m supervisor", description="foreman's command line")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the built-in demo on the deterministic test models (no API key)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        return asyncio.run(run_demo(sys.stdout))
    parser.error(f"unknown command {args.command!r}")  # argparse exits; kept for the type checker
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
