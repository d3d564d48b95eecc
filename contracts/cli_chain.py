"""Subcommands `ledger serve|fund|mine|status|dump` and `demo` of `python -m contracts`.

`ledger` commands other than `serve` open the ledger's data folder directly (SQLite handles a running server
alongside). Every command prints a readable summary, or JSON with `--json`.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from contracts.fees import FeeRate

DEFAULT_DATA = Path("var/ledger")
DEFAULT_PORT = 18332


def register(subcommands: argparse._SubParsersAction) -> None:
    ledger = subcommands.add_parser(
        "ledger", help="the local ledger: serve it over HTTP, fund, mine, inspect"
    )
    actions = ledger.add_subparsers(dest="ledger_command", required=True)

    def common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--data", type=Path, default=DEFAULT_DATA, help=f"data folder (default {DEFAULT_DATA})"
        )
        parser.add_argument("--fee-rate", type=int, default=100, help="relay floor in sat/kB (default 100)")
        parser.add_argument("--json", action="store_true", help="print JSON")
        return parser

    serve = common(actions.add_parser("serve", help="serve ARC and WhatsOnChain-style HTTP endpoints"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--block-interval", type=float, default=None, help="mine a block every S seconds")
    serve.add_argument(
        "--dev",
        action="store_true",
        help="also serve the faucet, on-demand mining and chaos endpoints (development and tests only)",
    )
    serve.set_defaults(handler=ledger_serve)

    fund = common(actions.add_parser("fund", help="faucet: pay SATS to ADDRESS"))
    fund.add_argument("address")
    fund.add_argument("satoshis", type=int)
    fund.set_defaults(handler=ledger_fund)

    mine = common(actions.add_parser("mine", help="mine N blocks (default 1)"))
    mine.add_argument("blocks", type=int, nargs="?", default=1)
    mine.set_defaults(handler=ledger_mine)

    common(actions.add_parser("status", help="height, mempool, UTXO totals")).set_defaults(
        handler=ledger_status
    )
    common(actions.add_parser("dump", help="every accepted transaction, in order")).set_defaults(
        handler=ledger_dump
    )

    demo = subcommands.add_parser(
        "demo", help="fund, deploy, claim with MNIST images, refund, on a local ledger"
    )
    demo.add_argument("--digit", type=int, default=7)
    demo.add_argument("--slots", type=int, default=4)
    demo.add_argument("--reward", type=int, default=1_000)
    demo.add_argument("--data", type=Path, default=Path("var/demo-ledger"))
    demo.add_argument("--model", type=Path, default=None, help="model artifact (default: the committed one)")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(handler=run_demo_command)


def open_ledger(args: argparse.Namespace) -> Any:
    from contracts.ledger import LocalLedger

    if args.fee_rate < 0:
        raise ValueError("--fee-rate must not be negative")
    return LocalLedger(args.data, fee_rate=FeeRate(args.fee_rate))


def emit(args: argparse.Namespace, data: Any, text: str) -> int:
    print(json.dumps(data, indent=2) if args.json else text)
    return 0


def ledger_serve(args: argparse.Namespace) -> int:
    from contracts.ledger_http import LedgerService
    from contracts.verify import require_native_vm

    require_native_vm()
    service = LedgerService(open_ledger(args), args.host, args.port, args.block_interval, dev=args.dev)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    service.start()
    every = f", a block every {args.block_interval:g} s" if args.block_interval else ""
    emit(
        args,
        {"url": service.url, "data": str(args.data)},
        f"ledger at {service.url} (data {args.data}){every}",
    )
    sys.stdout.flush()
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
    return 0


def ledger_fund(args: argparse.Namespace) -> int:
    txid = open_ledger(args).fund(args.address, args.satoshis)
    return emit(args, {"txid": txid}, f"funded {args.address} with {args.satoshis:,} sat in {txid} (mempool)")


def ledger_mine(args: argparse.Namespace) -> int:
    if not 1 <= args.blocks <= 10_000:
        raise ValueError("mine 1 to 10,000 blocks")
    heights = open_ledger(args).mine(args.blocks)
    return emit(args, {"heights": heights}, f"mined {len(heights)} block(s); height {heights[-1]}")


def ledger_status(args: argparse.Namespace) -> int:
    summary = open_ledger(args).summary()
    text = (
        f"height {summary['height']}, {summary['transactions']} transactions "
        f"({summary['mempool']} in mempool), {summary['utxos']} UTXOs holding "
        f"{summary['utxo_satoshis']:,} sat, floor {summary['fee_rate_sat_per_kb']} sat/kB"
    )
    return emit(args, summary, text)


def ledger_dump(args: argparse.Namespace) -> int:
    entries = open_ledger(args).dump()
    lines = [f"{e.txid} {e.kind:7} {e.size:>9,} B fee {e.fee:>7,} {e.to_json()['where']}" for e in entries]
    return emit(args, [entry.to_json() for entry in entries], "\n".join(lines) or "(no transactions)")


def run_demo_command(args: argparse.Namespace) -> int:
    from contracts.demo import load_demo_inputs, run_demo
    from contracts.ledger import LocalLedger
    from contracts.verify import require_native_vm

    require_native_vm()
    if not 0 <= args.digit <= 9:
        raise ValueError(f"--digit must be 0..9, got {args.digit}")
    model, images, labels = load_demo_inputs(args.model)
    ledger = LocalLedger(args.data)

    def quiet(_: str) -> None:
        return None

    report = run_demo(
        ledger,
        model,
        images,
        labels,
        digit=args.digit,
        slots=args.slots,
        reward=args.reward,
        say=quiet if args.json else print,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    return 0
