"""One test per hazard rule of qpu-isa.md §16: a program that breaks it is reported (with the rule,
the address and the disassembly), and the nearest program that keeps it is not."""

from __future__ import annotations

import pytest

import qpuasm

END = "\nnop; nop; thrend\nnop\nnop\n"

# (rule, severity, breaking program, nearest correct program, address of the reported instruction)
CASES = [
    (1, "error", "mov ra1, r0\nmov r1, ra1", "mov ra1, r0\nnop\nmov r1, ra1", 8),
    (1, "error", "mov rb2, r0\nadd r1, r1, rb2", "mov rb2, r0\nadd r1, r1, ra2", 8),
    (2, "error", "mov recip, r0\nnop\nmov r1, r4", "mov recip, r0\nnop\nnop\nmov r1, r4", 16),
    (2, "error", "mov recip, r0\nmov exp, r1", "mov recip, r0\nnop\nnop\nmov exp, r1", 8),
    (3, "error", "brr -, r:1f\nbrr -, r:1f\nnop\nnop\nnop\n:1\nnop", "brr -, r:1f\nnop\nnop\nnop\n:1\nnop", 8),
    (3, "warning", "brr -, r:1f\nnop\nnop\nbrr -, r:1f\nnop\nnop\nnop\n:1\nnop",
     "brr -, r:1f\nnop\nnop\nnop\nbrr -, r:1f\nnop\nnop\nnop\n:1\nnop", 24),
    (4, "error", "mov ra1, r0; thrend\nnop\nnop", "mov r1, r0; thrend\nnop\nnop", 0),
    (5, "error", "nop; thrend\nmov r0, unif\nnop", "mov r0, unif\nnop; thrend\nnop\nnop", 8),
    (5, "error", "nop; thrend\nnop\nmov vw_setup, r0", "mov vw_setup, r0\nnop; thrend\nnop\nnop", 16),
    (6, "error", "nop; thrend\nmov r0, ra14\nnop", "nop; thrend\nmov r0, ra13\nnop", 8),
    (7, "error", "nop; thrend\nnop\nmov tlbz, r0", "nop; thrend\nmov tlbz, r0\nnop", 16),
    (8, "warning", "nop; sbwait" + END, "nop\nnop\nnop; sbwait" + END, 0),
    (9, "error", "mov tmurs, 1\nnop\nmov t0s, r0", "mov tmurs, 1\nnop\nnop\nnop\nmov t0s, r0", 16),
    (10, "warning", "nop; fmul r0, ra1, r1 >> 2", "nop; fmul r0, r2, r1 >> 2", 0),
    (11, "error", "mov r5rep, r0\nmov r1, r2 >> r5", "mov r5rep, r0\nnop\nmov r1, r2 >> r5", 8),
    (12, "warning", "mov r2, r0\nmov r1, r2 >> 2", "mov r3, r0\nmov r1, r2 >> 2", 8),
    (13, "warning", "mov tlbz, r0\nmov r1, ms_flags", "mov tlbz, r0\nnop\nnop\nmov r1, ms_flags", 8),
    (14, "error", "mov t0s, r0; mov recip, r1", "mov t0s, r0; mov r2, r1", 0),
    (14, "error", "mov t0s, r0; ldtmu0", "mov r1, r0; ldtmu0", 0),
    (15, "error", "mov unif_addr, r0\nnop\nmov r1, unif", "mov unif_addr, r0\nnop\nnop\nmov r1, unif", 16),
    (16, "error", "mov t0t, r0\nmov t0s, unif", "mov t0s, unif", 8),
    (17, "warning", "mov r0, r1; mov r0, r2", "mov.ifz r0, r1; mov.ifnz r0, r2", 0),
    (18, "warning", "mov.ifz vpm, r0", "mov vpm, r0", 0),
    (18, "warning", "mov.ifz t0s, r0", "mov.ifz irq, r0", 0),
    (19, "warning", "mov vpm.16a, r0", "mov ra1.16a, r0", 0),
    (19, "warning", "nop; fmul vpm.8asf, r0, r1", "nop; fmul r2.8asf, r0, r1", 0),
    (20, "warning", "mov vr_setup, r0; mov vw_setup, r1", "mov vr_setup, r0\nmov vw_setup, r1", 0),
    (23, "error", "mov t1s, r0\n" * 9 + "nop; ldtmu1\n" * 9,
     "mov t1s, r0\n" * 8 + ("nop; ldtmu1\nmov t1s, r0\n" * 5), 64),
    (28, "warning", "mov irq, 0", "mov irq, 1", 0),
    (25, "error", "sacq t0s, 1", "sacq r0, 1", 0),
    (26, "error", "nop; thrsw\nnop; thrsw\nnop\nnop", "nop; thrsw\nnop\nnop\nnop; thrsw\nnop\nnop", 8),
    (27, "warning", "bra -, ra3\nnop\nnop\nnop", "bra -, ra2\nnop\nnop\nnop", 0),
]


def _rules(source: str) -> list[qpuasm.Diagnostic]:
    return qpuasm.check(qpuasm.assemble(source, check=False).words)


@pytest.mark.parametrize("rule, severity, bad, good, address", CASES,
                         ids=[f"rule{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule(rule, severity, bad, good, address):
    found = [d for d in _rules(bad) if d.rule == rule]
    assert found, f"rule {rule} not reported"
    assert found[0].severity == severity
    assert found[0].address == address
    assert found[0].text == qpuasm.disassemble(qpuasm.assemble(bad, check=False).words[address // 8: address // 8 + 1],
                                               labels=False).strip()
    assert f"rule {rule}" in str(found[0])
    assert not [d for d in _rules(good) if d.rule == rule], "the correct program was reported"


def test_branch_targets_are_followed():
    """A regfile write in the last delay slot, read at the branch target: rule 1 across the jump."""
    source = "brr -, r:1f\nnop\nnop\nmov ra1, r0\nnop\n:1\nmov r1, ra1"
    found = [d for d in _rules(source) if d.rule == 1]
    assert [d.address for d in found] == [40]
    # The fall-through path of an unconditional branch is not taken, so no report at address 32.
    assert not [d for d in _rules("brr -, r:1f\nnop\nnop\nmov ra1, r0\n:1\nnop\nmov r1, ra1") if d.rule == 1]


def test_gpu_fft_is_clean():
    from qpuasm import formats

    from .conftest import gpu_fft_hex_files
    files = gpu_fft_hex_files()
    if not files:
        pytest.skip("GPU_FFT hex files not present")
    for path in files:
        assert qpuasm.check(formats.read_hex(path.read_text())) == [], path.name
