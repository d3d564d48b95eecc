"""Subcommands compile, unlock and verify (filled in by the compiler work)."""

import argparse


def register(subcommands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    return None
