"""Small scenarios and a PNG check for the report tests (trace, plots, HTML, browser)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.analysis.evaluate import Evaluation, evaluate
from sim.specs.scenario import Scenario, scenario_from_mapping

#: 8 layers so that 2 stages x 2 virtual chunks get 2 layers each.
MODEL = {"num_layers": 8, "hidden_size": 1024, "ffn_hidden_size": 4096, "num_attention_heads": 16,
         "num_kv_heads": 16, "vocab_size": 32000, "seq_len": 1024}


def small_scenario(gbs: int | None = None, **parallelism) -> Scenario:
    """TP 2 x PP 2 (interleaved, 2 chunks) x DP 2 on 8 H100, 4 micro-batches per pipeline unless ``gbs``
    says otherwise; ``parallelism`` overrides the layout."""
    par = {"tensor": 2, "pipeline": 2, "context": 1, "data": 2, "zero_stage": 1, "virtual_pipeline": 2,
           "schedule": "interleaved-1f1b", "sequence_parallel": True, **parallelism}
    gpus = par["tensor"] * par["pipeline"] * par["context"] * par["data"]
    return scenario_from_mapping({
        "name": "small", "model": MODEL,
        "cluster": {"gpu": "H100-SXM-80GB", "num_gpus": gpus, "topology": "dgx-h100-superpod"},
        "parallelism": par, "training": {"global_batch_size": gbs or 4 * par["data"]}})


@pytest.fixture(scope="session")
def small_eval() -> Evaluation:
    ev = evaluate(small_scenario(), record=True)  # the pipeline timeline plot needs it
    assert ev.step is not None
    return ev


def png_pixels(path_or_bytes: Path | bytes) -> np.ndarray:
    """RGB pixels in [0, 1] of a PNG file or PNG bytes."""
    import io

    import matplotlib.image

    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    return np.asarray(matplotlib.image.imread(source, format="png"))[..., :3]


def assert_not_empty(png: Path | bytes, min_colored: float = 0.002) -> None:
    """The image varies and carries data marks: at least ``min_colored`` of its pixels are saturated
    colour (axes, text and background are black, grey or white; bars and lines are coloured)."""
    rgb = png_pixels(png)
    assert rgb.var() > 1e-3, f"pixel variance {rgb.var():.2e}: blank image"
    saturation = rgb.max(axis=-1) - rgb.min(axis=-1)
    colored = float((saturation > 0.25).mean())
    assert colored >= min_colored, f"only {colored:.2%} coloured pixels: no data drawn"
