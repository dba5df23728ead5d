"""``trainsim docs`` (the generated format references in docs/) and ``trainsim schema`` (JSON Schema)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub) -> None:
    docs = sub.add_parser("docs", help="write or check the generated format references (docs/*.md, *.schema.json)")
    docs.add_argument("folder", nargs="?", default="docs", help="the docs folder (default: docs)")
    mode = docs.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated files")
    mode.add_argument("--check", action="store_true", help="exit 1 when a generated file is missing or stale")
    docs.set_defaults(func=_cmd_docs)
    schema = sub.add_parser("schema", help="print the JSON Schema (draft 2020-12) of a scenario file, for editors")
    schema.add_argument("--topology", action="store_true", help="the schema of a topology file instead")
    schema.set_defaults(func=_cmd_schema)


def _cmd_docs(args: argparse.Namespace) -> int:
    from sim.report.docs import REGENERATE, stale_docs, write_docs

    folder = Path(args.folder)
    if args.check:
        stale = stale_docs(folder)
        for name in stale:
            print(f"trainsim: {folder / name} is out of date; run `{REGENERATE}`", file=sys.stderr)
        return 1 if stale else 0
    for name in write_docs(folder):
        print(f"trainsim: wrote {folder / name}", file=sys.stderr)
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from sim.specs.jsonschema import scenario_schema, topology_schema

    print(json.dumps(topology_schema() if args.topology else scenario_schema(), indent=2))
    return 0
