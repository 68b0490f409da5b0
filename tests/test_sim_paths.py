"""The compiled core and the plain-Python core give the same bits.

The same programs run here (compiled by numba where installed) and in a child interpreter with
VC4KIT_JIT=0 (every core function as plain Python). Their registers, flags, memory, VPM, cycle
counts, cache statistics and warnings must be identical. The programs: random ALU instructions
over every opcode, pack, unpack, condition and small immediate (non-strict, so that what strict
mode would refuse still runs and warns), and the speed benchmark's TMU/VPM/DMA/mutex kernel on
12 QPUs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import qpuasm
from qpuasm import isa
from simulator.jit import COMPILED
from simulator.machine import SimulationWarning, run_program
from tests.conftest import ROOT

RANDOM_INSTRUCTIONS = 400
MIXED = """
    mov r3, 6
    mov ra2, unif
    mov r1, qpu_num
    shl r1, r1, 6
    add ra3, ra2, r1
    mov r0, 0x1000
    add ra4, ra3, r0
    shl r2, elem_num, 2
:1
    mov r1, 2.0
    mov sfu_recip, r1
    add t0s, ra3, r2
    nop
    fmul r1, r4, r4
    nop; ldtmu0
    fadd r0, r4, r1
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


def _field(name: str) -> isa.Field:
    return next(f for f in isa.ALU_FIELDS if f.name == name)


def random_alu_program(seed: int) -> list[int]:
    """Registers and flags loaded with random values, then random ALU instructions."""
    rng = np.random.default_rng(seed)
    source = []
    for r in range(isa.REGFILE_SIZE):
        source += [f"ldi ra{r}, {int(rng.integers(0, 1 << 32)):#x}", f"ldi rb{r}, {int(rng.integers(0, 1 << 32)):#x}"]
    source += [f"ldi r{r}, {int(rng.integers(0, 1 << 32)):#x}" for r in range(4)]
    source += ["mov r5rep, 3", "ldi.setf r3, 0x12345678"]
    words = list(qpuasm.assemble("\n".join(source), check=False).words)
    add_codes = [code for code, name in enumerate(isa.ADD_OPS) if name]
    for _ in range(RANDOM_INSTRUCTIONS):
        small_imm = rng.random() < 0.3
        fields = {
            "sig": isa.SIG_SMALL_IMM if small_imm else isa.SIG_NONE,
            "unpack": int(rng.integers(0, 8)), "pm": int(rng.integers(0, 2)), "pack": int(rng.integers(0, 16)),
            "cond_add": int(rng.integers(0, 8)), "cond_mul": int(rng.integers(0, 8)), "sf": int(rng.integers(0, 2)),
            "ws": int(rng.integers(0, 2)),
            # destinations: registers, accumulators r0..r3 and r5 (never I/O with side effects)
            "waddr_add": int(rng.choice([*range(isa.REGFILE_SIZE), *range(32, 36), isa.ADDR_R5, isa.NOP_ADDR])),
            "waddr_mul": int(rng.choice([*range(isa.REGFILE_SIZE), *range(32, 36), isa.ADDR_R5, isa.NOP_ADDR])),
            "op_mul": int(rng.integers(0, 8)), "op_add": int(rng.choice(add_codes)),
            "raddr_a": int(rng.integers(0, isa.REGFILE_SIZE)),
            "raddr_b": int(rng.integers(0, 64 if small_imm else isa.REGFILE_SIZE)),
            "add_a": int(rng.integers(0, 8)), "add_b": int(rng.integers(0, 8)),
            "mul_a": int(rng.integers(0, 8)), "mul_b": int(rng.integers(0, 8)),
        }
        if fields["pm"] and isa.PACK_MUL[fields["pack"]] is None:
            fields["pack"] = 0
        if fields["waddr_add"] == fields["waddr_mul"] != isa.NOP_ADDR:
            fields["waddr_mul"] = isa.NOP_ADDR        # one destination per register (§16)
        words.append(sum(_field(name).put(value) for name, value in fields.items()))
    words += list(qpuasm.assemble("nop; nop; thrend\nnop\nnop", check=False).words)
    return words


def _digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def summary() -> dict:
    """Everything observable after each workload, as JSON-able values."""
    out = {}
    for seed in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SimulationWarning)
            v3d, states = run_program(random_alu_program(seed), strict=False)
        out[f"random{seed}"] = {"qpu": _digest(v3d.qpu_state), "warnings": v3d.warnings,
                                "cycles": v3d.report.cycles}
    v3d, states = run_program(qpuasm.assemble(MIXED).words, uniforms=[0x8000], qpus=12)
    out["mixed"] = {"qpu": _digest(v3d.qpu_state), "memory": _digest(v3d.memory.data), "vpm": _digest(v3d.vpm),
                    "caches": _digest(v3d.caches), "cycles": v3d.report.cycles,
                    "stalls": [q.stall_cycles for q in v3d.report.per_qpu]}
    return out


@pytest.mark.skipif(not COMPILED, reason="numba is not installed (or VC4KIT_JIT=0): only the plain path exists")
def test_compiled_and_plain_python_cores_agree():
    compiled = summary()
    env = dict(os.environ, VC4KIT_JIT="0")
    child = subprocess.run([sys.executable, "-m", "tests.test_sim_paths"], cwd=ROOT, env=env, capture_output=True,
                           text=True, check=True)
    plain = json.loads(child.stdout)
    assert plain["mixed"]["cycles"] > 0 and compiled["random0"]["warnings"]   # the workloads did something
    assert compiled == plain


if __name__ == "__main__":
    print(json.dumps(summary()))
