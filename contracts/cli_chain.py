"""Subcommands ledger and demo (filled in by the chain work)."""

import argparse


def register(subcommands: argparse._SubParsersAction) -> None:
    return None
