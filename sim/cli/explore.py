"""``trainsim search``, ``size`` and ``sweep``: many scenarios at once (sim.analysis.explore)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from sim.cli._common import progress_bar


def register(sub) -> None:
    """Add the three commands to the ``trainsim`` sub-parsers."""
    _register_search(sub)
    _register_size(sub)
    _register_sweep(sub)


# ---- argument types --------------------------------------------------------------------------------

def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: values must be >= 0")
    return values


def _enum_list(enum):
    def parse(text: str):
        try:
            return tuple(enum(v.strip()) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: use comma-separated values of "
                                             f"{', '.join(m.value for m in enum)}") from None
    return parse


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number > 0")
        return value
    return parse


#: ``--fix`` keys: the search option each sets to one value.
FIX_KEYS = {"tp": "tp", "pp": "pp", "cp": "cp", "dp": "dp", "vp": "vp", "ep": "ep", "etp": "etp",
            "mb": "micro_batches", "zero": "zero",
            "recompute": "recompute", "schedule": "schedules", "tp_overlap": "tp_overlap"}


def _fix(text: str) -> dict[str, str]:
    """``tp=8,pp=16``: dimensions pinned to one value each (KEY=VALUE, comma-separated)."""
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in FIX_KEYS or not value.strip():
            raise argparse.ArgumentTypeError(f"{part!r}: expected KEY=VALUE with KEY one of {', '.join(FIX_KEYS)}")
        out[FIX_KEYS[key]] = value.strip()
    return out


def _bool_list(text: str) -> tuple[bool, ...]:
    words = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}
    try:
        return tuple(dict.fromkeys(words[v.strip().lower()] for v in text.split(",")))
    except KeyError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated on/off") from None


def _price(text: str) -> tuple[str, float]:
    gpu, _, usd = text.partition("=")
    try:
        price = float(usd)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected GPU=USD_PER_GPU_HOUR") from None
    if not (math.isfinite(price) and price >= 0):
        raise argparse.ArgumentTypeError(f"{text!r}: the price must be a finite number >= 0")
    return gpu, price


def _interrupted(command: str) -> int:
    print(f"\ntrainsim: {command} interrupted", file=sys.stderr)
    return 130


def _progress(label: str, quiet: bool):
    return None if quiet else progress_bar(label)


def _check_common(args: argparse.Namespace) -> None:
    """The budget of the options every exploring command has (before any scenario is loaded)."""
    from sim.analysis.explore.pool import default_workers
    from sim.specs import budget

    if args.workers is not None:
        budget.check_workers(args.workers, default_workers())
    if getattr(args, "replicas", None) is not None:
        budget.check("--replicas", args.replicas, budget.LIMITS.replicas)


# ---- search ----------------------------------------------------------------------------------------

#: ``sim.analysis.explore.search.OBJECTIVES`` (spelled out: building the parser must not import the engine).
OBJECTIVE_CHOICES = ("step", "days", "cost")


def _register_search(sub) -> None:
    from sim.specs.enums import Recompute, Schedule

    cmd = sub.add_parser("search", help="enumerate every valid layout of a scenario and rank the best by simulation")
    cmd.add_argument("scenario", help="scenario YAML file (its model, cluster and training job)")
    cmd.add_argument("--top", type=_positive(int), default=10,
                     help="rows printed; these also get run-level days and cost (default 10)")
    cmd.add_argument("--simulate", type=_positive(int), default=512,
                     help="layouts simulated, best pre-screen estimate first, besides the scenario's own (default 512)")
    cmd.add_argument("--objective", choices=OBJECTIVE_CHOICES,
                     help="rank by step time, run days or cost (default: days with a failures block, else step)")
    cmd.add_argument("--micro-batches", type=_int_list, default=(1, 2, 4, 8), metavar="LIST",
                     help="micro-batch sizes tried (default 1,2,4,8)")
    cmd.add_argument("--zero", type=_int_list, default=(0, 1, 2, 3), metavar="LIST",
                     help="ZeRO stages tried (default 0,1,2,3)")
    cmd.add_argument("--recompute", type=_enum_list(Recompute), default=tuple(Recompute), metavar="LIST",
                     help="recompute modes tried (default none,selective,full)")
    cmd.add_argument("--schedules", type=_enum_list(Schedule), default=tuple(Schedule), metavar="LIST",
                     help="pipeline schedules tried (default gpipe,1f1b,interleaved-1f1b)")
    cmd.add_argument("--max-virtual", type=_positive(int), default=8,
                     help="interleaved-1f1b model chunks per rank tried: 2..N (default 8)")
    for flag, what in (("tp", "tensor"), ("pp", "pipeline"), ("cp", "context"), ("dp", "data"),
                       ("vp", "interleaved model chunks per rank")):
        cmd.add_argument(f"--{flag}", type=_int_list, metavar="LIST",
                         help=f"{what} degrees tried (default: every one that fits the GPU count)"
                         if flag != "vp" else f"{what} tried (default 2..--max-virtual)")
    cmd.add_argument("--ep", type=_int_list, metavar="LIST",
                     help="MoE: expert-parallel degrees tried (default: every divisor of the routed experts that "
                          "the expert mesh fits)")
    cmd.add_argument("--etp", type=_int_list, metavar="LIST",
                     help="MoE: expert tensor-parallel degrees tried (default: every divisor of the layout's TP)")
    cmd.add_argument("--tp-overlap", type=_bool_list, default=(False, True), metavar="LIST",
                     help="TP communication overlapped with GEMMs: off,on (default both; on only with TP > 1 and each "
                          "TP group inside one NVLink domain: beyond it the overlapped layouts are counted as "
                          "rejected)")
    cmd.add_argument("--fix", type=_fix, action="append", metavar="KEY=VALUE,...",
                     help="pin dimensions to one value, e.g. tp=8,pp=16,zero=1,recompute=selective,tp_overlap=on, "
                          "ep=8,etp=1 "
                          f"(keys: {', '.join(FIX_KEYS)})")
    cmd.add_argument("--validated-only", action="store_true",
                     help="rank only layouts whose every feature validation covers (rows within 15 %% exercising "
                          "it at that scale); the others are listed as unvalidated, unranked")
    cmd.add_argument("--replicas", type=_positive(int), help="run-level replicas (default simulation.monte_carlo)")
    cmd.add_argument("--workers", type=_positive(int), help="worker processes (default: all cores)")
    cmd.add_argument("-o", "--output", help="write every valid layout with its figures (.csv, or .parquet)")
    cmd.add_argument("--plot", metavar="DIR", help="write step time and MFU of the ranked layouts (PNG) into DIR")
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cmd.set_defaults(func=_cmd_search)


def _cmd_search(args: argparse.Namespace) -> int:
    from sim.analysis.explore.search import search
    from sim.analysis.explore.space import SearchSpace
    from sim.cli._common import check_output_dir, check_output_file, load_checked
    from sim.errors import TrainsimError

    _apply_fix(args)
    if any(z > 3 for z in args.zero):
        raise TrainsimError(f"--zero {args.zero}: stages are 0, 1, 2, 3")
    if 0 in args.micro_batches:
        raise TrainsimError("--micro-batches: sizes must be >= 1")
    for flag in ("tp", "pp", "cp", "dp", "vp", "ep", "etp"):
        if getattr(args, flag) is not None and 0 in getattr(args, flag):
            raise TrainsimError(f"--{flag}: degrees must be >= 1")
    _check_common(args)
    if args.output:
        check_output_file(args.output, "-o", (args.scenario,))
    if args.plot:
        check_output_dir(args.plot, "--plot")
    base = load_checked(args.scenario)
    for flag in ("ep", "etp"):
        if base.model.moe is None and getattr(args, flag) is not None:
            raise TrainsimError(f"--{flag}: the model is dense (no model.moe); there is no expert mesh to vary")
    # more model chunks per rank than layers cannot be valid: the enumeration stops there
    space = SearchSpace(micro_batch_sizes=args.micro_batches, zero_stages=args.zero, recomputes=args.recompute,
                        schedules=args.schedules, max_virtual=min(args.max_virtual, max(2, base.model.num_layers)),
                        tp_comm_overlaps=args.tp_overlap, tensor=args.tp, pipeline=args.pp, context=args.cp,
                        data=args.dp, virtual_pipelines=args.vp, expert=args.ep, expert_tensor=args.etp)
    try:
        result = search(base, space, simulate=args.simulate, run_top=args.top, replicas=args.replicas,
                        objective=args.objective, workers=args.workers, validated_only=args.validated_only,
                        progress=_progress("search", args.quiet))
    except KeyboardInterrupt:
        return _interrupted("search")
    print(_search_report(result, space, args.top))
    if args.plot:
        _plot_search(result, args.top, args.plot)
    if args.output:
        _write_search_table(result, args.output)
    return 0


def _apply_fix(args: argparse.Namespace) -> None:
    """``--fix KEY=VALUE``: each pinned dimension becomes its option with one value (parsed as that option)."""
    from sim.errors import TrainsimError
    from sim.specs.enums import Recompute, Schedule

    parsers = {"tp": _int_list, "pp": _int_list, "cp": _int_list, "dp": _int_list, "vp": _int_list,
               "ep": _int_list, "etp": _int_list,
               "micro_batches": _int_list, "zero": _int_list, "recompute": _enum_list(Recompute),
               "schedules": _enum_list(Schedule), "tp_overlap": _bool_list}
    for fixed in args.fix or []:
        for option, value in fixed.items():
            try:
                parsed = parsers[option](value)
            except argparse.ArgumentTypeError as err:
                raise TrainsimError(f"--fix: {err}") from None
            if len(parsed) != 1:
                raise TrainsimError(f"--fix {option}={value}: one value (lists go to --{option.replace('_', '-')})")
            setattr(args, option, parsed)


def _search_report(result, space, top: int) -> str:
    enum, s = result.enumeration, result.enumeration.base
    c = enum.cluster
    t = result.timings_s
    experts = ""
    if s.model.moe is not None:
        eps = ",".join(map(str, space.expert)) if space.expert else f"divisors of the {s.model.moe.num_experts} experts"
        etps = ",".join(map(str, space.expert_tensor)) if space.expert_tensor else "divisors of TP"
        experts = f"; expert mesh ETP x EP x EDP over each stage's GPUs: EP {eps}, ETP {etps}"
    overlap = "the scenario's where it can run" if enum.tp_overlaps is None else \
        ",".join("on" if b else "off" for b in enum.tp_overlaps) \
        + (" (on: TP > 1, each TP group in one NVLink domain)" if True in enum.tp_overlaps else "")
    lines = [
        f"{s.name}: {s.model.preset or 'model'} on {c.num_gpus:,} x {c.gpu} ({c.topology.name}), global batch "
        f"{s.training.global_batch_size:,} x {s.model.seq_len:,} tokens",
        f"layouts enumerated   {enum.total:>9,}  every TP x PP x CP x DP = {c.num_gpus:,}{experts}; "
        f"{', '.join(x.value for x in space.schedules)} (interleaved x 2..{space.max_virtual} chunks); micro-batch "
        f"{','.join(map(str, space.micro_batch_sizes))}; ZeRO {','.join(map(str, space.zero_stages))}; "
        f"recompute {','.join(r.value for r in space.recomputes)}; TP overlap {overlap}; embedding/loss pipeline "
        "split or not"
        f"{', or uneven first/last stages where PP x VP does not divide the layers' if space.uneven_pipelines else ''}",
        f"rejected by the rules {enum.num_rejected:>8,}  (scenario validation; by first problem, e.g.)",
    ]
    for r in sorted(enum.rejected.values(), key=lambda r: -r.count):
        lines.append(f"  {r.count:>12,}  {r.example}")
    for z, why in enum.zero_left_out.items():
        lines.append(f"  ZeRO {z} not tried: {why}")
    lines += [
        f"rejected for memory  {result.screened_out_of_memory + result.out_of_memory:>9,}  "
        f"{result.screened_out_of_memory:,} by the pre-screen (> {s.gpu.memory_gib:g} GiB), "
        f"{result.out_of_memory:,} by the exact memory model",
        f"simulated            {result.simulated:>9,}  the best pre-screen estimates"
        f"{' and the scenario' + chr(39) + 's own layout' if result.own in result.rows else ''}",
        f"not simulated        {len(enum.valid) - len(result.rows) - result.screened_out_of_memory:>9,}  "
        "valid, ranked lower by the pre-screen"
        + (f"; {result.over_budget:,} over the work budget (micro-batches x stages x chunks; --allow-large)"
           if result.over_budget else ""),
        f"time {result.elapsed_s:.1f} s: enumerate + validate {t['enumerate']:.1f} s, pre-screen "
        f"{t['prescreen']:.2f} s ({len(enum.valid) / max(t['prescreen'], 1e-9):,.0f} layouts/s), simulate "
        f"{t['simulate']:.1f} s, run level {t['run level']:.1f} s ({result.workers} processes)",
        "",
    ]
    rho, n = result.prescreen_spearman(), result.simulated_in_space
    if rho is not None:
        value = "undefined (ties: all equal)" if rho != rho else f"{rho:+.2f}"
        lines.insert(-1, f"pre-screen vs simulation: Spearman rank correlation {value} between estimated and "
                         f"simulated step times over the {n:,} simulated layouts of the space")
    ranked = result.ranked()
    if not ranked:
        fitting = sum(1 for r in result.rows.values() if r["step_time_s"] is not None)
        # --validated-only can leave nothing to rank though layouts fit: say which, not "no layout fits"
        lines.append(f"no fully validated layout: each of the {fitting:,} simulated layouts that fit in memory has a "
                     "feature no validation row covers (run without --validated-only to see them and those features)"
                     if result.validated_only and fitting else "no layout fits in memory")
        return "\n".join(lines)
    only = ", validated layouts only" if result.validated_only else ""
    lines.append(f"ranked by {result.objective} (simulated{only}); * the scenario's own layout; last column: "
                 "features no validation row within 15 % covers at this scale (sim/catalog/validation/coverage.yaml)")
    lines.append(f"{'rank':>4}  {'layout':<72} {'step s':>7} {'MFU':>6} {'tok/s/GPU':>9} {'GiB':>5} "
                 f"{'days':>7} {'P90 d':>7} {'cost $M':>8}  unvalidated")
    own_rank = result.own_rank()
    for k, (layout, row) in enumerate(ranked, 1):
        if k > top and k != own_rank:
            continue
        if k == own_rank and k > top + 1:
            lines.append(f"{'...':>4}")
        lines.append(_ranked_line(k, layout, row, own=k == own_rank))
    own_row = result.rows.get(result.own)
    if own_row is not None and own_rank is None:
        why = "does not fit in memory" if own_row["step_time_s"] is None else \
            f"unranked: unvalidated ({own_row['unvalidated']}), step {own_row['step_time_s']:.3f} s"
        lines.append(f"   *  {result.layout(result.own).label()}: {why}")
    if result.validated_only:
        left = sum(1 for r in result.rows.values() if r["step_time_s"] is not None and r["unvalidated"])
        lines.append(f"{left:,} simulated layouts not ranked: a feature no validation row covers")
    return "\n".join(lines)


def _ranked_line(k: int, layout, row: dict, own: bool) -> str:
    days = "-" if row["days"] is None else f"{row['days']:.1f}"
    p90 = "-" if row["days_p90"] is None else f"{row['days_p90']:.1f}"
    cost = "-" if row["cost_usd"] is None else f"{row['cost_usd'] / 1e6:.1f}"
    return (f"{k:>4}{'*' if own else ' '} {layout.label():<72} {row['step_time_s']:7.3f} {row['mfu']:6.1%} "
            f"{row['tokens_per_s_per_gpu']:9,.0f} {row['memory_gib']:5.1f} {days:>7} {p90:>7} {cost:>8}  "
            f"{row['unvalidated'] or '-'}")


def _plot_search(result, top: int, folder: str) -> None:
    from sim.report.plots import layout_comparison, save_plots

    rows = [(layout.label(), row["step_time_s"], row["mfu"]) for layout, row in result.ranked()[:top]]
    if rows:
        png = layout_comparison(rows, f"{result.enumeration.base.name}: best {len(rows)} layouts by {result.objective}")
        for path in save_plots({"layouts.png": png}, folder):
            print(f"wrote {path}")


def _write_search_table(result, path: str) -> None:
    from sim.analysis.explore.objective import FIGURE_COLUMNS
    from sim.report.tables import write_table

    columns = ("rank", "tensor", "pipeline", "virtual_pipeline", "context", "data", "expert", "expert_tensor",
               "zero_stage", "micro_batch_size",
               "recompute", "schedule", "split", "first_stage_layers", "last_stage_layers", "tp_comm_overlap", "status",
               "est_step_time_s", "est_memory_gib",
               *FIGURE_COLUMNS, "unvalidated")
    n = write_table(path, result.table(), columns)
    print(f"\nwrote {n:,} layouts to {path}")


# ---- size ------------------------------------------------------------------------------------------

def _register_size(sub) -> None:
    cmd = sub.add_parser("size", help="GPU count (and layout) meeting a deadline or budget at the lowest cost",
                         description="GPU count (and layout) meeting a deadline or budget at the lowest cost. Each "
                                     "count searches micro-batch 1, ZeRO-1, 1F1B or interleaved, every degree, chunk "
                                     "count, recompute mode and pipeline split, with the scenario's tp_comm_overlap "
                                     "where it can run (off at TP 1 and where a TP group leaves the NVLink domain).")
    cmd.add_argument("model", help="scenario YAML file, or a model preset (trainsim presets)")
    cmd.add_argument("--tokens", type=_positive(float), required=True, help="training tokens, e.g. 15.6e12")
    cmd.add_argument("--deadline-days", type=_positive(float), help="train within this many days")
    cmd.add_argument("--budget-usd", type=_positive(float), help="spend at most this much")
    cmd.add_argument("--gpu", action="append", metavar="NAME[:TOPOLOGY]",
                     help="GPU type (repeatable); default fabric per GPU, or name one (default: the scenario's)")
    cmd.add_argument("--counts", type=_int_list, metavar="LIST",
                     help="GPU counts to try (default: whole-node grid around the 6ND estimate)")
    cmd.add_argument("--global-batch", type=_int_list, metavar="LIST",
                     help="sequences per step (required with a preset); a list (1024,2048,4096) tries each at every "
                          "count and keeps the fastest")
    cmd.add_argument("--price", type=_price, action="append", metavar="GPU=USD",
                     help="USD per GPU-hour for a GPU type (default: the scenario's costs for its own GPU type, "
                          "else the catalog's price with its source: trainsim gpus)")
    cmd.add_argument("--simulate", type=_positive(int), default=4,
                     help="layouts simulated per GPU count, the pre-screen's best first (default 4)")
    cmd.add_argument("--replicas", type=_positive(int), help="run-level replicas (default simulation.monte_carlo)")
    cmd.add_argument("--workers", type=_positive(int), help="worker processes (default: all cores)")
    cmd.add_argument("--plot", metavar="DIR", help="write days and cost vs GPU count per GPU type (PNG) into DIR")
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cmd.set_defaults(func=_cmd_size)


def _cmd_size(args: argparse.Namespace) -> int:
    import dataclasses

    from sim.analysis.explore.size import gpu_cluster, size
    from sim.cli._common import check_output_dir, is_file, load_checked
    from sim.errors import TrainsimError
    from sim.specs import budget

    if args.deadline_days is None and args.budget_usd is None:
        raise TrainsimError("size needs --deadline-days or --budget-usd (or both)")
    _check_common(args)
    for count in args.counts or ():
        budget.check("--counts", count, budget.LIMITS.gpus)
    if args.plot:
        check_output_dir(args.plot, "--plot")
    gpus = [(g.partition(":")[0], g.partition(":")[2] or None) for g in args.gpu or []]
    base = load_checked(args.model) if is_file(args.model) else _preset_base(args, gpus)
    if args.global_batch is not None:
        if 0 in args.global_batch:
            raise TrainsimError("--global-batch: sizes must be >= 1")
        base = dataclasses.replace(base, training=dataclasses.replace(base.training,
                                                                      global_batch_size=args.global_batch[0]))
    clusters = [gpu_cluster(g, t, base.cluster.num_gpus) for g, t in gpus] or [base.cluster]
    try:
        result = size(base, args.tokens, clusters, deadline_days=args.deadline_days, budget_usd=args.budget_usd,
                      counts=args.counts, prices=dict(args.price or []), simulate=args.simulate,
                      replicas=args.replicas, workers=args.workers, global_batches=args.global_batch,
                      progress=_progress("size", args.quiet))
    except KeyboardInterrupt:
        return _interrupted("size")
    print(_size_report(base, args.tokens, result))
    if args.plot:
        _plot_size(base, result, args.plot)
    return 0


def _plot_size(base, result, folder: str) -> None:
    from sim.report.plots import cost_vs_gpus, save_plots

    figures = {}
    for gpu, curve in result.curves.items():
        rows = [(p.num_gpus, p.days, p.cost_usd) for p in curve if p.figures is not None]
        if rows:
            figures[f"size_{gpu}.png"] = cost_vs_gpus(rows, f"{base.model.preset or base.name} on {gpu}")
    for path in save_plots(figures, folder):
        print(f"wrote {path}")


def _preset_base(args: argparse.Namespace, gpus):
    from sim import catalog
    from sim.analysis.explore.size import DEFAULT_TOPOLOGY, gpu_cluster
    from sim.errors import TrainsimError
    from sim.specs.scenario import scenario_from_mapping

    if args.model not in catalog.preset_table():
        raise TrainsimError(f"{args.model!r} is neither a scenario file nor a model preset "
                            f"({', '.join(catalog.preset_table())})")
    if args.global_batch is None or not gpus:
        raise TrainsimError("with a model preset, give --global-batch and at least one --gpu")
    gpu, topology = gpus[0]
    cluster = gpu_cluster(gpu, topology, 1)  # unknown GPU or no default fabric: a clear error first
    return scenario_from_mapping({
        "name": args.model, "model": {"preset": args.model},
        "cluster": {"gpu": cluster.gpu, "num_gpus": 1, "topology": topology or DEFAULT_TOPOLOGY[cluster.gpu]},
        "parallelism": {}, "training": {"global_batch_size": args.global_batch[0], "tokens": args.tokens}})


def _size_report(base, tokens: float, result) -> str:
    from sim.analysis.explore.size import smaller_neighbour

    goal = []
    if result.deadline_days is not None:
        goal.append(f"within {result.deadline_days:g} days")
    if result.budget_usd is not None:
        goal.append(f"within ${result.budget_usd / 1e6:,.1f}M")
    failures = "run level with the scenario's failures (spares scaled)" if base.failures else "no failures"
    lines = [f"{base.model.preset or base.name}: {tokens:.3g} tokens, global batch "
             f"{base.training.global_batch_size:,} x {base.model.seq_len:,}, {' and '.join(goal)}; {failures}"]
    batches = {p.global_batch for curve in result.curves.values() for p in curve}
    for gpu, curve in result.curves.items():
        price, where = result.prices[gpu]
        gbs = f" {'batch':>6}" if len(batches) > 1 else ""
        lines += ["", f"{gpu}: ${price:.2f}/GPU-h ({where})",
                  f"{'GPUs':>8}  {'best layout':<72}{gbs} {'step s':>7} {'MFU':>6} {'days':>7} "
                  f"{'GPU-h M':>8} {'cost $M':>8}"]
        for p in curve:
            if p.figures is None:
                lines.append(f"{p.num_gpus:>8,}  {p.note}")
                continue
            f = p.figures
            mark = "  <- chosen" if p is result.choice[gpu] else ""
            batch = f" {p.global_batch:>6,}" if len(batches) > 1 else ""
            lines.append(f"{p.num_gpus:>8,}  {p.layout.label():<72}{batch} {f['step_time_s']:7.3f} {f['mfu']:6.1%} "
                         f"{f['days']:7.1f} {f['gpu_hours'] / 1e6:8.2f} {f['cost_usd'] / 1e6:8.1f}{mark}")
            for note in (p.note, p.why_slower):
                if note:
                    lines.append(f"{'':>10}({note})")
        rhos = sorted(p.spearman for p in curve if p.spearman is not None and p.spearman == p.spearman)
        if rhos:
            lines.append(f"  pre-screen vs simulation per GPU count: Spearman median {rhos[len(rhos) // 2]:+.2f} "
                         f"(min {rhos[0]:+.2f}) over {len(rhos)} counts")
        best = result.choice[gpu]
        if best is None:
            lines.append("  no GPU count searched meets the goal; widen --counts")
            continue
        cost_per_h = best.cost_usd / best.figures["gpu_hours"] if best.figures["gpu_hours"] else price
        lines.append(f"  chosen: {best.num_gpus:,} x {gpu}, {best.days:.1f} days, ${best.cost_usd / 1e6:,.1f}M "
                     f"(${cost_per_h:.2f}/GPU-h), {best.layout.label()}")
        below = smaller_neighbour(curve, best)
        if below is not None:
            verdict = "misses the goal" if not below.meets(result.deadline_days, result.budget_usd) else \
                "also meets it (but costs more)"
            days = "no layout" if below.days is None else f"{below.days:.1f} days"
            lines.append(f"  next smaller count searched: {below.num_gpus:,} GPUs, {days}: {verdict}")
    return "\n".join(lines)


# ---- sweep -----------------------------------------------------------------------------------------

def _register_sweep(sub) -> None:
    cmd = sub.add_parser("sweep", help="evaluate a grid of scenario variants into one resumable table")
    cmd.add_argument("sweep", help="sweep YAML file (base scenario + grid/points of field paths)")
    cmd.add_argument("-o", "--output", help="results CSV (default SWEEP-results.csv here); rerun to resume")
    cmd.add_argument("--dask", metavar="ADDRESS", help="run on this Dask scheduler (tcp://host:8786)")
    cmd.add_argument("--workers", type=_positive(int), help="local worker processes (default: all cores)")
    cmd.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cmd.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from sim.analysis.explore.sweep import check_dask_address, run_sweep
    from sim.cli._common import check_output_file
    from sim.report.tables import sweep_results
    from sim.specs.sweep import load_sweep

    _check_common(args)
    if args.dask is not None:
        check_dask_address(args.dask)
    out = args.output or f"{Path(args.sweep).stem}-results.csv"
    check_output_file(out, "-o", (args.sweep,))
    sweep = load_sweep(args.sweep)
    if sweep.source is not None:
        check_output_file(out, "-o", (sweep.source,))
    try:
        outcome = run_sweep(sweep, sweep_results(sweep, out), dask=args.dask, workers=args.workers,
                            progress=_progress("sweep", args.quiet))
    except KeyboardInterrupt:
        print(f"\ntrainsim: interrupted; finished points are in {out}; run the same command to resume",
              file=sys.stderr)
        return 130
    print(_sweep_report(sweep, outcome, out))
    return 0


def _sweep_report(sweep, outcome, out: str) -> str:
    lines = [f"{outcome.total} points: {outcome.already_done} already in {out}, {outcome.computed} computed", ""]
    fields = list(sweep.fields)
    widths = [max(len(f), 6) for f in fields]
    head = "  ".join(f"{f:>{w}}" for f, w in zip(fields, widths, strict=True))
    lines.append(f"{head}  {'status':<13} {'step s':>7} {'MFU':>6} {'days':>7} {'P90 d':>7} {'goodput':>7} "
                 f"{'cost $M':>8}")
    for row in outcome.rows:
        cells = "  ".join(f"{row[f]:>{w}}" for f, w in zip(fields, widths, strict=True))
        lines.append(f"{cells}  {row['status']:<13} {_num(row['step_time_s'], '7.3f')} {_pct(row['mfu'])} "
                     f"{_num(row['days'], '7.1f')} {_num(row['days_p90'], '7.1f')} {_pct(row['goodput'], 7)} "
                     f"{_num(row['cost_usd'], '8.1f', 1e6)}")
        if row["status"] == "invalid":
            lines.append(f"    {row['reason']}")
    return "\n".join(lines)


def _num(text: str, fmt: str, scale: float = 1.0) -> str:
    width = int(fmt.split(".")[0])
    return f"{float(text) / scale:{fmt}}" if text else f"{'-':>{width}}"


def _pct(text: str, width: int = 6) -> str:
    return f"{float(text):{width}.1%}" if text else f"{'-':>{width}}"
