"""The rank mesh: (pp, dp, cp, tp) coordinates laid onto physical GPUs.

Ranks are numbered with TP innermost, then CP, then DP, then PP (Megatron's default order), so a TP
group fills consecutive GPUs of one node (its collectives sit on the critical path and need NVLink),
CP next (ring K/V exchange, overlapped), DP outside (gradient reduction, overlapped and latency
tolerant), PP outermost (point-to-point only). A group along an axis is ``size`` ranks spaced by the
product of the inner axes' sizes. ``parallelism.placement_order`` changes the order (validated in
``sim.specs.layout``); ``sim.parallelism.placement`` gives the GPUs of every group for any order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sim.specs.layout import ParallelismSpec


class Axis(StrEnum):
    TP = "tp"
    CP = "cp"
    DP = "dp"
    PP = "pp"


#: Innermost first.
DEFAULT_ORDER: tuple[Axis, ...] = (Axis.TP, Axis.CP, Axis.DP, Axis.PP)


@dataclass(frozen=True, slots=True)
class Group:
    """A communication group: ``size`` ranks, consecutive members ``stride`` GPUs apart."""

    size: int
    stride: int


@dataclass(frozen=True, slots=True)
class ParallelMesh:
    """Degrees per axis and their placement order."""

    sizes: dict[Axis, int]
    order: tuple[Axis, ...] = DEFAULT_ORDER

    @classmethod
    def from_layout(cls, layout: ParallelismSpec) -> ParallelMesh:
        return cls({Axis.TP: layout.tensor, Axis.CP: layout.context, Axis.DP: layout.data,
                    Axis.PP: layout.pipeline}, tuple(Axis(a) for a in layout.placement_axes))

    @property
    def num_ranks(self) -> int:
        total = 1
        for size in self.sizes.values():
            total *= size
        return total

    def stride(self, axis: Axis) -> int:
        """GPUs between consecutive members of an ``axis`` group."""
        stride = 1
        for inner in self.order:
            if inner is axis:
                return stride
            stride *= self.sizes[inner]
        raise KeyError(axis)

    def group(self, *axes: Axis) -> Group:
        """The group spanning ``axes`` together (they must be adjacent in the order)."""
        ordered = sorted(axes, key=self.order.index)
        positions = [self.order.index(a) for a in ordered]
        if positions != list(range(positions[0], positions[0] + len(positions))):
            raise ValueError(f"axes {axes} are not adjacent in placement order {self.order}")
        size = 1
        for a in ordered:
            size *= self.sizes[a]
        return Group(size=size, stride=self.stride(ordered[0]))

    def coords(self, rank: int) -> dict[Axis, int]:
        """Mesh coordinates of a global rank."""
        out = {}
        for axis in self.order:
            out[axis] = rank % self.sizes[axis]
            rank //= self.sizes[axis]
        return out
