"""The run simulation: a whole training run, replica by replica, advanced in segments between events.

Pieces: ``params`` (what a replica is given and returns), ``arrivals`` (when failures come), ``ledger``
(what work is saved where), ``recovery`` (where a restart resumes from), ``fleet`` (bursts, lemon nodes),
``slow`` (stragglers, fail-slow episodes), and ``replica`` (the job's process that sequences them).
"""

from sim.engine.run.params import LOSSES, ReplicaResult, RunEvent, RunParams
from sim.engine.run.replica import simulate_run

__all__ = ["LOSSES", "ReplicaResult", "RunEvent", "RunParams", "simulate_run"]
