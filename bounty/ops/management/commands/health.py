"""`manage.py health`: the readiness probes as a table (or `--json`); exit status 1 unless all pass.

`--wait S` retries for up to S seconds until every probe passes (deploy scripts, the smoke test);
`--only NAME` runs some probes (e.g. `--only database --only redis` before the workers are up).
"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError

from bounty.ops import probes


class Command(BaseCommand):
    help = "Check the database, Redis, the chain backend and the worker heartbeat."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument("--wait", type=float, default=0, help="retry for up to this many seconds")
        parser.add_argument(
            "--only", action="append", choices=list(probes.PROBES), help="run only this probe"
        )

    def handle(self, *args: object, **options: object) -> None:
        names = options["only"] or None
        deadline = time.monotonic() + float(options["wait"])  # type: ignore[arg-type]
        while True:
            results = probes.run_all(names)  # type: ignore[arg-type]
            ready = all(p.ok for p in results)
            if ready or time.monotonic() >= deadline:
                break
            time.sleep(1)
        if options["json"]:
            body = {"status": "ready" if ready else "not ready", "checks": [p.to_json() for p in results]}
            self.stdout.write(json.dumps(body, indent=2))
        else:
            self.stdout.write(table(results))
        if not ready:
            failed = ", ".join(p.name for p in results if not p.ok)
            raise CommandError(f"not ready: {failed}")


def table(results: list[probes.Probe]) -> str:
    rows = [("check", "status", "ms", "detail")]
    rows += [(p.name, "ok" if p.ok else "FAIL", str(p.milliseconds), p.detail) for p in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)
