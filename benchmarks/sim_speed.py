"""Simulator speed: QPU instructions simulated per second on one core.

(a) an ALU-bound loop on one QPU; (b) a mixed kernel on 12 QPUs: TMU loads, VPM writes and VDW
DMA stores behind the mutex, semaphores. Median of N runs after one warm-up run
(which compiles the core), measured wall time.

    python benchmarks/sim_speed.py [--runs 3] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qpuasm  # noqa: E402
from simulator.jit import COMPILED  # noqa: E402
from simulator.machine import run_program  # noqa: E402

ALU_LOOP = """
    mov r1, 0
    mov r2, 1.0
    mov r0, 1.0
    mov r3, {iterations}
:1
    fadd r1, r1, r2; fmul r0, r0, r2
    sub.setf r3, r3, 1
    brr.anynz -, r:1b
    fadd r1, r1, r2; fmul r0, r0, r2
    add r2, r2, 0; v8min r0, r0, r0
    fadd r1, r1, r2; fmul r0, r0, r2
    nop; nop; thrend
    nop
    nop
"""

MIXED = """
    mov r3, {iterations_mixed}
    mov ra2, unif                   # input buffer base
    mov r1, qpu_num
    shl r1, r1, 6
    add ra3, ra2, r1                # this QPU's 64 input bytes
    mov r0, 0x1000
    add ra4, ra3, r0                # and its 64 output bytes (written by VDW, never read by the TMU)
    shl r2, elem_num, 2
:1
    add t0s, ra3, r2
    nop; ldtmu0
    fadd r0, r4, 1.0
    mov -, mutex
    mov vw_setup, vpm_setup(1, 1, h32(0))
    mov vpm, r0
    mov vw_setup, vdw_setup_0(1, 16, dma_h32(0, 0))
    mov vw_addr, ra4
    mov -, vw_wait
    mov mutex, 0
    sub.setf r3, r3, 1
    brr.anynz -, r:1b
    nop
    nop
    nop
    mov -, srel(0)
    nop; nop; thrend
    nop
    nop
"""


def measure(source: str, qpus: int, runs: int, scale: float) -> tuple[int, float]:
    source = source.replace("{iterations}", str(max(1, int(200_000 * scale))))
    source = source.replace("{iterations_mixed}", str(max(1, int(2_000 * scale))))
    words = qpuasm.assemble(source).words
    run_program(words, uniforms=[0x8000], qpus=qpus, memory_size=1 << 20)    # warm-up: compiles the core once
    rates = []
    count = 0
    for _ in range(runs):
        start = time.perf_counter()
        _, states = run_program(words, uniforms=[0x8000], qpus=qpus, memory_size=1 << 20)
        elapsed = time.perf_counter() - start
        count = sum(s.instructions for s in states)
        rates.append(count / elapsed)
    return count, statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="loop counts relative to the default (e.g. 0.01 for the plain-Python core)")
    args = parser.parse_args()
    core = "numba-compiled" if COMPILED else "plain Python (numba absent or VC4KIT_JIT=0)"
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; core: {core}; "
          f"median of {args.runs} runs, measured wall time")
    print(f"{'workload':<40} {'instructions':>12} {'instr/s':>12}")
    for name, source, qpus in (("(a) ALU loop, 1 QPU", ALU_LOOP, 1), ("(b) TMU+VPM+DMA+mutex, 12 QPUs", MIXED, 12)):
        count, rate = measure(source, qpus, args.runs, args.scale)
        print(f"{name:<40} {count:>12,} {rate:>12,.0f}")


if __name__ == "__main__":
    main()
