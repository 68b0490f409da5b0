"""The Python builder makes the same words as the assembler, with the same checks."""

from __future__ import annotations

import pytest

import qpuasm
from qpuasm.builder import Builder, packed, reg, sacq, unpacked


def test_builder_matches_assembler():
    k = Builder()
    k.mov(reg.ra1, reg.unif)
    k.nop()
    k.label("loop")
    k.sub(reg.ra1, reg.ra1, 1, setf=True).fmul(reg.r1, reg.r0, reg.r2)
    k.mov(reg.r3, reg.r2 >> 1)
    k.brr(reg.nop, "loop", cond="anynz")
    k.nop(); k.nop(); k.nop()                                  # noqa: E702
    k.mov(reg.nop, sacq(3))
    k.fadd(packed(reg.ra2, "16a"), unpacked(reg.ra3, "16b"), reg.r1)
    k.mov(reg.r0, reg.r4).ldtmu0()
    k.ldi(reg.r1, [0, 1, 2, 3] * 4)
    k.mov(reg.rb[7], 0x12345678)
    k.label("end", export=True)
    k.thrend()
    k.nop(); k.nop()                                           # noqa: E702
    program = k.build()
    text = """
mov ra1, unif
nop
:loop
sub.setf ra1, ra1, 1; fmul r1, r0, r2
mov r3, r2 >> 1
brr.anynz -, r:loop
nop
nop
nop
mov -, sacq(3)
fadd ra2.16a, ra3.16b, r1
mov r0, r4; ldtmu0
ldi r1, [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]
mov rb7, 0x12345678
::end
nop; thrend
nop
nop
"""
    expected = qpuasm.assemble(text)
    assert program.words.tolist() == expected.words.tolist()
    assert program.labels == expected.labels and program.globals == {"end": expected.labels["end"]}


def test_builder_errors_point_at_the_python_line():
    k = Builder()
    k.mov(reg.ra1, reg.r0)
    k.mov(reg.r1, reg.ra1)              # reads ra1 right after the write: rule 1
    with pytest.raises(qpuasm.AssembleError) as info:
        k.build()
    assert info.value.filename == __file__ and "rule 1" in info.value.message
    k = Builder()
    k.add(reg.r0, reg.r1, 100)
    with pytest.raises(qpuasm.AssembleError, match="not a small immediate"):
        k.build()
    k = Builder()
    k.brr(reg.nop, "nowhere")
    with pytest.raises(qpuasm.AssembleError, match="undefined label nowhere"):
        k.build()
