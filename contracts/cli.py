"""The `python -m contracts` command line.

Each group of subcommands lives beside the code it drives and registers itself here:
`cli_predicate` (compile, unlock, verify) and `cli_chain` (ledger, demo).
Errors of the package end the program with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from contracts.errors import ContractsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m contracts", description=__doc__.splitlines()[0])
    subcommands = parser.add_subparsers(dest="command", required=True)
    from contracts import cli_chain, cli_predicate

    cli_predicate.register(subcommands)
    cli_chain.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ContractsError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
