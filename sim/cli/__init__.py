"""The ``trainsim`` command: parse, load, call, print. Errors become one line each and exit 2."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sim import __version__
from sim.cli import docs, explore, network, report, runlevel
from sim.cli._common import add_run_level_options, evaluate_with_run, progress_bar
from sim.errors import ScenarioError, TrainsimError
from sim.specs import budget

#: Problems printed per error, and characters per line: an error is read, not scrolled.
MAX_ISSUES = 20
MAX_LINE = 300


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.report import strict_json
    from sim.report.result import result_dict, summary_text

    report.check_run_outputs(args)
    ev, run = evaluate_with_run(args, record=report.wants_run_events(args))
    if args.json:
        print(strict_json.dumps(result_dict(ev, run), indent=2, sort_keys=False))
    else:
        print(summary_text(ev, run))
    report.write_run_outputs(args, ev, run)
    return 0


def _cmd_presets(_: argparse.Namespace) -> int:
    from sim import catalog
    from sim.costs import flops
    from sim.specs._schema import build
    from sim.specs.model import ModelSpec

    print(f"{'preset':<16} {'layers':>6} {'hidden':>7} {'ffn':>7} {'heads':>5} {'kv':>4} {'attn':>4} {'vocab':>7} "
          f"{'seq':>6} {'params B':>9} {'active B':>9}  experts (routed x width, top-k, +shared, dense first)")
    for name, p in catalog.preset_table().items():
        m = build(ModelSpec, {k: v for k, v in p.items() if k not in ("name", "source", "note")}, f"preset {name}")
        experts = "-"
        if m.moe is not None:
            e = m.moe
            experts = (f"{e.num_experts} x {e.expert_ffn_hidden_size}, top-{e.top_k}"
                       f"{f', +{e.shared_experts}' if e.shared_experts else ''}"
                       f"{f', {e.first_dense_layers} dense' if e.first_dense_layers else ''}"
                       f"{f', every {e.moe_layer_frequency}' if e.moe_layer_frequency > 1 else ''}")
        print(f"{name:<16} {m.num_layers:>6} {m.hidden_size:>7} {m.ffn_hidden_size:>7} {m.num_attention_heads:>5} "
              f"{m.num_kv_heads:>4} {m.attention.value:>4} {m.vocab_size:>7} {m.seq_len:>6} "
              f"{flops.total_params(m) / 1e9:>9.1f} {flops.active_params(m) / 1e9:>9.1f}  {experts}")
    return 0


def _cmd_gpus(_: argparse.Namespace) -> int:
    from sim import catalog

    print(f"{'gpu':<16} {'bf16 TF':>8} {'fp8 TF':>8} {'HBM GiB':>8} {'HBM TB/s':>9} {'NVLink GB/s':>12} {'TDP W':>6} "
          f"{'$/GPU-h':>8}")
    for name, g in catalog.gpu_table().items():
        pk = g["peak_tflops"]
        half = pk.get("bf16") or pk.get("fp16")
        fp8 = f"{pk['fp8']:.0f}" if pk.get("fp8") else "-"
        price = f"{g['usd_per_gpu_hour']:.2f}" if g.get("usd_per_gpu_hour") is not None else "-"
        print(f"{name:<16} {half:>8.0f} {fp8:>8} {g['memory_gib']:>8.0f} {g['hbm_tbyte_s']:>9.2f} "
              f"{g['scale_up_gbyte_s']:>12.0f} {g['tdp_w']:>6.0f} {price:>8}")
    print("prices: default rental USD per GPU-hour for trainsim size, each with its price_source in "
          "sim/catalog/gpus.yaml")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from sim.analysis.validation import format_report, run_validation, source_names

    unknown = [s for s in args.source or [] if s not in source_names()]
    if unknown:
        raise TrainsimError(f"--source {unknown[0]!r}: not a validation source; known: {', '.join(source_names())}")
    report = run_validation(sources=args.source, progress=None if args.quiet else progress_bar("validate"))
    print(format_report(report, verbose=args.verbose))
    return 0


DESCRIPTION = ("Discrete-event simulator of LLM training clusters: step time, MFU and memory of a parallelism "
               "layout, and the whole run's days, goodput, cost, energy and CO2 under failures.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainsim", description=DESCRIPTION,
                                     epilog="`trainsim COMMAND -h` describes a command's options.")
    parser.add_argument("--version", action="version", version=f"trainsim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="simulate a scenario: one optimizer step, and the whole run when "
                                     "training.tokens is set")
    run.add_argument("scenario", help="scenario YAML file")
    run.add_argument("--json", action="store_true", help="print the result JSON (docs/result.md)")
    report.add_run_options(run)
    add_run_level_options(run)
    run.set_defaults(func=_cmd_run)
    report.register(sub)
    runlevel.register(sub)
    explore.register(sub)
    network.register(sub)
    docs.register(sub)
    val = sub.add_parser("validate", help="simulate published runs and print the error vs measured")
    val.add_argument("--source", action="append", help="only these sources (repeatable)")
    val.add_argument("-v", "--verbose", action="store_true", help="print every row")
    val.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    val.set_defaults(func=_cmd_validate)
    sub.add_parser("presets", help="list packaged model presets").set_defaults(func=_cmd_presets)
    sub.add_parser("gpus", help="list the GPU catalog").set_defaults(func=_cmd_gpus)
    for command in sub.choices.values():
        command.add_argument(budget.FLAG, action="store_true",
                             help="lift the work budget (GPUs, micro-batches, replicas, run events, sweep points, "
                                  "workers: README 'Limits') for a deliberately large run")
    return parser


def _print_error(head: str, lines: Sequence[str] = ()) -> None:
    print(_clip(f"trainsim: error: {head}"), file=sys.stderr)
    for line in lines[:MAX_ISSUES]:
        print(_clip(f"  {line}"), file=sys.stderr)
    if len(lines) > MAX_ISSUES:
        print(f"  ... and {len(lines) - MAX_ISSUES} more", file=sys.stderr)


def _clip(line: str) -> str:
    # one line, and no terminal control sequences from a hostile file's keys or values
    line = "".join(c if c.isprintable() else "?" for c in " ".join(line.split()))
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM takes the Ctrl-C path (pools shut down, partial results kept, exit 130); main thread only."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _terminate_as_interrupt(), budget.allowing(args.allow_large):
            rc = args.func(args)
            sys.stdout.flush()  # a full disk or a closed pipe is reported here, not as an exit-time traceback
            return rc
    except ScenarioError as err:
        head = f"{err.source}: " if err.source else ""
        _print_error(f"{head}invalid scenario ({len(err.issues)} problem(s))", [str(i) for i in err.issues])
        return 2
    except TrainsimError as err:
        _print_error(str(err))
        return 2
    except MemoryError:
        _print_error(f"out of memory; a smaller scenario, or fewer GPUs or replicas, may fit ({budget.FLAG} "
                     "lifts the work budget, not the machine's memory)")
        return 2
    except KeyboardInterrupt:
        print("\ntrainsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `trainsim ... | head`: the reader has all it wanted
        _detach_stdout()
        return 0
    except OSError as err:  # writing the output failed (/dev/full, a disk that filled up)
        _detach_stdout()
        _print_error(f"I/O error: {err.strerror or err}{f' ({err.filename})' if err.filename else ''}")
        return 2


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush of what could not be written does not
    print a traceback at exit (the Python documentation's advice for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout is not a file (captured in tests, embedded)
        pass
