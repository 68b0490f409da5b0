"""Strict mode: what the hardware leaves undefined, or what the simulator had to guess, stops the run
with the QPU, the PC, the disassembled instruction and the rule; non-strict mode warns once per site
and continues with the written policy."""

from __future__ import annotations

import re

import pytest

import qpuasm
from simulator.machine import SimulationError, SimulationWarning, run_program

END = "nop; nop; thrend\nnop\nnop\n"

# (what, program that triggers it, nearest program that does not, expected text)
CASES = [
    ("rule 1", "mov ra1, 1\nmov r0, ra1\n", "mov ra1, 1\nnop\nmov r0, ra1\n",
     "QPU0 at 0x1008 [mov r0, ra1]: ra1 is read right after it was written"),
    ("undefined value", "mov r0, rb7\nmov t0s, r0\nnop; ldtmu0\n", "mov rb7, 0\nnop\nmov r0, rb7\nmov t0s, r0\n"
     "nop; ldtmu0\n", "[mov t0s, r0]: writes to t0s a value computed from registers or flags that nothing wrote"),
    ("undefined value", "add r0, r1, 1\nmov vw_setup, r0\n", "mov r1, 0\nadd r0, r1, 1\nmov vw_setup, r0\n",
     "writes to vw_setup a value computed"),
    ("rule 2", "mov r1, 4\nmov recip, r1\nnop\nmov r0, r4\n", "mov r1, 4\nmov recip, r1\nnop\nnop\nmov r0, r4\n",
     "reads r4 before the SFU result is ready"),
    ("unknown", "mov r1, 2\nnop; mul24.setf r0, r1, r1\nmov.ifc r2, 1\n", "mov r1, 2\nadd.setf r0, r1, r1\n"
     "mov.ifc r2, 1\n", "uses a C flag set by the MUL ALU"),
    ("unknown", "mov r1, 0x60000000\nftoi r0, r1\n", "mov r1, 0x4e000000\nftoi r0, r1\n",
     "ftoi of a value of magnitude 2^31 or more"),
    ("unknown", "add r0, ra32, rb32\n", "mov r0, unif\nadd r0, r0, unif\n", "both read ports read a uniform"),
    # Each of these carries its own thrend; END after it is never reached.
    ("rule 5", "nop; nop; thrend\nmov r1, unif\nnop\n", "mov r1, unif\nnop; nop; thrend\nnop\nnop\n",
     "[mov r1, unif]: a uniform, varying or VPM read, or a VPM/DMA access, in the thrend instruction"),
    ("rule 5", "nop; nop; thrend\nnop\nmov vw_setup, 0\n", "mov vw_setup, 0\nnop; nop; thrend\nnop\nnop\n",
     "a uniform, varying or VPM read, or a VPM/DMA access"),
    ("rule 6", "mov r1, 2\nnop; nop; thrend\nmov ra14, r1\nnop\n", "mov ra14, 2\nnop; nop; thrend\nnop\nnop\n",
     "ra14/rb14 accessed in the thrend instruction or its two delay slots"),
    ("rule 21", "mov vr_setup, vpm_setup(2, 1, h32(0))\nnop\nnop\nmov r0, vpm\n",
     "mov vr_setup, vpm_setup(2, 1, h32(0))\nnop\nnop\nmov r0, vpm\nmov r1, vpm\n",
     "the program ends with 1 vector(s) of the last VPM read setup unread"),
]


@pytest.mark.parametrize("what, bad, good, text", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_strict_reports_and_non_strict_warns_once(what, bad, good, text):
    uniforms = [1, 2, 3, 4]
    with pytest.raises(SimulationError, match=re.escape(text)):
        run_program(qpuasm.assemble(bad + END, check=False).words, uniforms=uniforms)
    with pytest.warns(SimulationWarning, match=what):
        v3d, states = run_program(qpuasm.assemble(bad + END, check=False).words, uniforms=uniforms, strict=False)
    assert not states[0].running and len(v3d.warnings) == 1
    run_program(qpuasm.assemble(good + END, check=False).words, uniforms=uniforms)     # no error


def test_each_site_warns_once_in_loops():
    source = "mov r3, 3\n:1\nmov ra1, r3\nmov r0, ra1\nsub.setf r3, r3, 1\nbrr.anynz -, r:1b\nnop\nnop\nnop\n" + END
    with pytest.warns(SimulationWarning):
        v3d, _ = run_program(qpuasm.assemble(source, check=False).words, strict=False)
    assert len(v3d.warnings) == 1


def test_memory_outside_sdram_is_an_error():
    source = "mov r1, 0x7ffff000\nmov t0s, r1\nnop; ldtmu0\n" + END
    with pytest.raises(SimulationError, match=r"QPU0 at 0x1008: bus address 0x7ffff000 .* is outside the"):
        run_program(qpuasm.assemble(source).words)


def test_tmu_fifo_overflow():
    source = "mov r1, 0x100\n" + "mov t0s, r1\n" * 9 + "nop; ldtmu0\n" * 9 + END
    with pytest.raises(SimulationError, match="rule 23"):
        run_program(qpuasm.assemble(source, check=False).words)
