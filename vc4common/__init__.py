"""What every layer above the assembler shares: the host interface of the V3D (host.py), the timing
model's parameters and the run report (timing.py), and the errors that cross layers (errors.py).
It imports nothing of vc4kit but qpuasm's field type, so nnlib, the driver and the simulator can
all depend on it without depending on each other upward."""
