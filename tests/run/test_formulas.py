"""Run-level cost models against hand-computed values (reliability reference §1.9, Table 5, CK2, RS4)."""

from __future__ import annotations

import math

import pytest

from sim.costs import reliability as rel
from sim.costs.memory import stage_params_per_gpu
from sim.specs.reliability import CheckpointSpec, FailureSpec, InMemorySpec, RepairSpec
from sim.specs.scenario import load_scenario

BUNDLED = "scenarios/llama3-405b-16k-h100-tp8-pp16-dp128.yaml"


@pytest.mark.parametrize(("mtbi_h", "expected_min"), [(24, 116.7), (6, 56.7), (0.25, 9.1)])
def test_daly_interval_reproduces_dalys_examples(mtbi_h, expected_min):
    # Daly 2006: delta = 5 min; the abstract's examples 117 / 57 / 9.1 min
    assert rel.daly_interval(300, mtbi_h * 3600) / 60 == pytest.approx(expected_min, abs=0.06)


def test_young_interval_and_daly_limit():
    assert rel.young_interval(30, 10_000) == pytest.approx(math.sqrt(2 * 30 * 10_000))
    assert rel.daly_interval(1000, 400) == 400  # delta >= 2M: checkpoint every M


@pytest.mark.parametrize(("delta", "restart", "ettr"),
                         [(30, 300, 0.897), (30, 600, 0.871), (6, 300, 0.937), (120, 600, 0.803), (300, 900, 0.708)])
def test_daly_ettr_table_of_the_reference(delta, restart, ettr):
    mtbi = 166.9 * 60  # 466 interruptions in 54 days
    tau = rel.daly_interval(delta, mtbi)
    assert rel.daly_ettr(tau, delta, restart, mtbi) == pytest.approx(ettr, abs=0.0015)


def test_llama3_rate_set_gives_419_unexpected_in_the_snapshot():
    classes = rel.failure_classes(FailureSpec(model="llama3"), num_gpus=16_384, gpus_per_node=8)
    window = 54 * 86_400
    unplanned = sum(c.rate_per_s for c in classes if not c.planned) * window
    planned = sum(c.rate_per_s for c in classes if c.planned) * window
    assert unplanned == pytest.approx(419, rel=1e-3)
    assert planned == pytest.approx(47, rel=1e-3)
    gpu = sum(c.rate_per_s for c in classes if c.category == "gpu") * window
    assert gpu == pytest.approx(268, rel=1e-3)  # 64 % from the counts, not the misprinted 58.7 %


def test_rate_scale_custom_rates_and_populations():
    spec = FailureSpec(model="custom", rates={"node": 1e-4, "software": 0.01}, rate_scale=2.0)
    classes = {c.name: c for c in rel.failure_classes(spec, num_gpus=64, gpus_per_node=8)}
    assert classes["node"].rate_per_s == pytest.approx(2 * 1e-4 * 8 / 3600)  # 8 nodes
    assert classes["software"].rate_per_s == pytest.approx(2 * 0.01 / 3600)  # one job
    assert classes["node"].blast_nodes == 1 and classes["software"].blast_nodes == 0
    assert "planned_maintenance" not in classes  # custom sets have no planned schedule unless given


def test_meta_rsc_node_rate():
    classes = rel.failure_classes(FailureSpec(model="meta-rsc"), num_gpus=16_384, gpus_per_node=8)
    # Kokolis: MTTF = 1 / (N_nodes * r_f) = 24 / (2048 * 0.0065) = 1.80 h at 16,384 GPUs
    assert 1 / sum(c.rate_per_s for c in classes) / 3600 == pytest.approx(1.80, abs=0.01)


def test_checkpoint_is_14_bytes_per_parameter_for_adamw():
    s = load_scenario(BUNDLED)
    assert rel.checkpoint_bytes(s) / 405.9e9 == pytest.approx(14, rel=2e-3)  # CK2/CK3: 5.67 TB for 405B


def test_checkpoint_times_sync_and_async():
    s = load_scenario(BUNDLED)
    size = rel.checkpoint_bytes(s)
    sync = rel.checkpoint_times(s, CheckpointSpec(storage_write_gbyte_s=2000, async_=False))
    assert sync.stall_s == pytest.approx(size / 2e12) and sync.persist_s == 0
    asyn = rel.checkpoint_times(s, CheckpointSpec(storage_write_gbyte_s=2000, storage_read_gbyte_s=500))
    # the stall is the heaviest GPU's snapshot over PCIe Gen5 (64 GB/s x 0.8): the bundled scenario runs FSDP
    # without resharding after forward, so a GPU holds its stage's gathered bf16 weights (TP 8) beside its
    # 1/128 bf16 shard (DP 128), plus its 1/128 of the 12 B/param optimizer state
    heaviest = max(stage_params_per_gpu(s, r) for r in range(16))
    assert asyn.shard_bytes == pytest.approx(heaviest * (2 + 2 / 128 + 12 / 128))
    assert asyn.stall_s == pytest.approx(asyn.shard_bytes / 51.2e9) and 0.05 < asyn.stall_s < 0.5
    assert asyn.persist_s == pytest.approx(size / 2e12)
    assert asyn.load_s == pytest.approx(size / 5e11)
    given = rel.checkpoint_times(s, CheckpointSpec(stall_seconds=5.0, host_copy_gbyte_s=10))
    assert given.stall_s == 5.0 and given.host_copy_gbyte_s == 10


def test_in_memory_checkpoint_times():
    s = load_scenario(BUNDLED)
    mem = rel.checkpoint_times(s, CheckpointSpec(in_memory=InMemorySpec(replicas=3)))
    # reload from a peer: the shard over the host copy plus over the GPU's NIC (8 x 400 Gb/s / 8 GPUs = 50 GB/s)
    assert mem.memory_replicas == 3 and mem.stall_s == pytest.approx(mem.shard_bytes / 51.2e9)
    assert mem.memory_load_s == pytest.approx(mem.shard_bytes / 51.2e9 + mem.shard_bytes / 50e9)
    fixed = rel.checkpoint_times(s, CheckpointSpec(in_memory=InMemorySpec(snapshot_seconds=1)))
    assert fixed.stall_s == 1 and fixed.memory_replicas == 2
    assert rel.checkpoint_times(s, CheckpointSpec(in_memory=True)).memory_replicas == 2
    assert rel.checkpoint_times(s, CheckpointSpec(in_memory=False)).memory_replicas == 0


def test_repair_law_from_median_and_mean():
    mu, sigma = rel.repair_lognormal(RepairSpec(median=20.4, mean=132))
    assert math.exp(mu) == pytest.approx(20.4 * 3600)
    assert math.exp(mu + sigma**2 / 2) == pytest.approx(132 * 3600)  # the lognormal's mean
    assert rel.repair_lognormal(RepairSpec(median=2, mean=2)) == (pytest.approx(math.log(7200)), 0.0)


def test_collective_init_matches_the_published_point_and_grows_superlinearly():
    assert rel.collective_init_s(98_304) == pytest.approx(265, rel=0.02)
    assert rel.collective_init_s(16_384) / rel.collective_init_s(1_024) > 16


def test_restart_stage_total_by_hand():
    st = rel.RestartStages(30, 600, 300, 120, 40, 6, 60)
    assert st.total(hang=False) == 30 + 300 + 120 + 40 + 6 + 60
    assert st.total(hang=True) == 600 + 300 + 120 + 40 + 6 + 60
    assert st.total(hang=False, planned=True) == 120 + 40 + 6 + 60
