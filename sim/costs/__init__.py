"""Pure cost models: FLOPs, bytes, memory, kernel and collective time. No SimPy, no I/O."""
