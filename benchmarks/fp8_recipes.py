"""Why an fp8 recipe is faster or slower than bf16: one Llama 3.1 8B layer at TP 8 (torchtitan, compile, SP,
local batch 12 x 8192 tokens, the June 2025 async-TP benchmark's layout) on H100-SXM-96GB, per recipe: GEMM time,
quantize-kernel time, exposed TP communication, whole layer (forward + backward, op-level SAC recompute included).

    python benchmarks/fp8_recipes.py
"""

from __future__ import annotations

from sim.costs import fp8
from sim.costs.layer import Paths, layer_time
from sim.network.paths import scenario_paths
from sim.specs.scenario import scenario_from_mapping

MODEL = {"num_layers": 32, "hidden_size": 4096, "ffn_hidden_size": 14336, "num_attention_heads": 32,
         "num_kv_heads": 8, "vocab_size": 128256, "seq_len": 8192, "activation": "swiglu"}


def scenario(recipe: str | None):
    training = {"global_batch_size": 96, "compile": True}
    if recipe:
        training |= {"precision": "fp8", "fp8_recipe": recipe}
    return scenario_from_mapping({
        "name": f"8b-tp8-{recipe or 'bf16'}", "model": MODEL,
        "cluster": {"gpu": "H100-SXM-96GB", "num_gpus": 64, "topology": "meta-llama3-24k"},
        "parallelism": {"tensor": 8, "data": 8, "zero_stage": 3, "framework": "torchtitan", "sequence_parallel": True,
                        "micro_batch_size": 12, "activation_recompute": "selective"},
        "training": training})


def main() -> None:
    print(f"{'recipe':<11} {'quantize ms':>11} {'layer ms':>9} {'TP exposed ms':>13} {'vs bf16':>8}")
    base = None
    for recipe in (None, "tensorwise", "rowwise"):
        s = scenario(recipe)
        p = scenario_paths(s.cluster.topology, s.gpu, s.parallelism)
        t = layer_time(s, s.gpu, Paths(tp=p.tp, cp=p.cp, ep=p.ep), moe=False)
        x = s.model.seq_len * s.parallelism.micro_batch_size
        lin = fp8.layer_linears(s, x, s.model.ffn_hidden_size, gate=True)
        quant = fp8.quantize_time(s, s.gpu, lin, backward=False) + fp8.quantize_time(s, s.gpu, lin, backward=True)
        total = t.forward.total + t.backward.total
        base = base or total
        print(f"{recipe or 'bf16':<11} {quant * 1e3:11.2f} {total * 1e3:9.2f} "
              f"{(t.forward.tp_comm + t.backward.tp_comm) * 1e3:13.2f} {total / base:8.2f}")


if __name__ == "__main__":
    main()
