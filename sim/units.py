"""Unit constants: the only place with powers of ten and two for data sizes and rates."""

KIB = 2**10
MIB = 2**20
GIB = 2**30

KB = 1e3
MB = 1e6
GB = 1e9
TB = 1e12

TERA = 1e12
GIGA = 1e9

US = 1e-6
MS = 1e-3
HOUR = 3600.0
DAY = 86400.0

BYTES_PER_DTYPE = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
