"""Assembler behaviour: directives, macros, labels, expressions, defaults, and error positions."""

from __future__ import annotations

import re

import pytest

import qpuasm
from qpuasm import AssembleError


def words(source: str, **kw) -> list[int]:
    return [int(w) for w in qpuasm.assemble(source, check=False, **kw).words]


def one(source: str) -> int:
    (word,) = words(source)
    return word


def test_broadcom_defaults_nop_and_idle_alu():
    assert one("nop") == 0x100009E7_009E7000            # qpu-isa.md §2 canonical NOP
    assert one("mov -, vw_wait") == 0x100009E7_159F2FC0  # `-` destination: cond never
    assert one("and.setf -, elem_num, 1") == 0xD00229E7_14981DC0  # .setf keeps cond always


def test_constant_moves_become_ldi_and_pair():
    assert one("mov r0, 0") >> 60 == 0xE                 # Broadcom: a lone constant mov is ldi
    assert one("mov r0, r1; mov r2, 3") >> 60 == 0xD     # beside an ALU op: small immediate
    assert one("mov r0, 0x1234; mov r1, 0x1234") == 0xE0024821_00001234


def test_rotation_directions():
    # §9: r0 << 1 is code 63, r0 >> 1 is code 49 (FFT-HEX), >> r5 is code 48
    assert (one("mov r2, r0 << 1") >> 12) & 63 == 63
    assert (one("mov r3, r0 >> 1") >> 12) & 63 == 49
    assert (one("mov r3, r0 >> r5") >> 12) & 63 == 48
    assert one("mov r3, r0 >> 16") == one("mov r3, r0")   # a full turn is no rotation


def test_set_macro_rep_if_include(tmp_path):
    inc = tmp_path / "inc"
    inc.mkdir()
    (inc / "defs.qinc").write_text(".set BASE, 4\n.macro addk, dst, k\n    add dst, dst, k\n.endm\n")
    source = """
.include <defs.qinc>
.set ra_p, ra1
.rep i, 3
  .if i == 1
    addk r0, BASE
  .elseif i == 2
    addk ra_p+i, -1
  .else
    nop
  .endif
.endr
.ifset BASE
  mov r1, BASE * 2 + (1 << 3)
.endif
"""
    got = words(source, include_path=[str(inc)])
    assert got == words("nop\nadd r0, r0, 4\nadd ra3, ra3, -1\nmov r1, 16")


def test_defines_and_labels():
    assert words(".if N > 2\nmov r0, N\n.endif", defines={"N": 5}) == words("mov r0, 5")
    assert words(".if N > 2\nmov r0, N\n.endif", defines={"N": "1"}) == []
    assert words("mov R, 1", defines={"R": "ra5"}) == words("mov ra5, 1")
    with pytest.raises(AssembleError, match=re.escape("-D N=1 +: unexpected end of line")):
        qpuasm.assemble("nop", defines={"N": "1 +"})
    source = ":start\nnop\n::entry\nnop\n:1\nbrr -, r:1b\nnop\nnop\nnop\nbrr -, r:start\nnop\nnop\nnop"
    program = qpuasm.assemble(source, check=False)
    assert program.labels == {"start": 0, "entry": 8}
    assert program.globals == {"entry": 8}
    assert int(program.words[2]) & 0xFFFFFFFF == (16 - (16 + 32)) & 0xFFFFFFFF
    assert int(program.words[6]) & 0xFFFFFFFF == (0 - (48 + 32)) & 0xFFFFFFFF


def test_forward_labels_and_label_arithmetic():
    source = "brr -, r:1f\nnop\nnop\nnop\n:1\n:a\nnop\n:b\nmov r1, :b - :a\nbrr -, :a\nnop\nnop\nnop"
    w = words(source)
    assert w[0] & 0xFFFFFFFF == 0            # target = branch + 32
    assert w[5] & 0xFFFFFFFF == 8
    assert w[6] & 0xFFFFFFFF == (32 - (48 + 32)) & 0xFFFFFFFF


def test_trailing_and_leading_semicolon_merge():
    assert words("add r0, r1, r2;\nfmul r3, r0, r1") == words("add r0, r1, r2; fmul r3, r0, r1")
    assert words("add r0, r1, r2\n;fmul r3, r0, r1") == words("add r0, r1, r2; fmul r3, r0, r1")


def test_raw_long_directive():
    assert words(".long 0x009e7000, 0x100009e7") == [0x100009E7_009E7000]


@pytest.mark.parametrize("source, line, column, message", [
    ("nop\nfadd r0, r1", 2, 1, "fadd takes a destination and two sources"),
    ("mov r0, ra1\nadd r0, ra1, ra2", 2, 1, "too many register reads"),
    ("add r0, r1, 100", 1, 1, "is not a small immediate"),
    ("nop\n  mov r0, undefined_name", 2, 11, "undefined symbol undefined_name"),
    ("mov r0, (1 +", 1, 13, "unexpected end of line"),
    ("brr -, r:nowhere\nnop\nnop\nnop", 1, 8, "undefined label :nowhere"),
    ("fadd.ifq r0, r1, r2", 1, 1, "unknown suffix .ifq"),
    ("fadd r4, r1, r2", 1, 1, "r4 cannot be written"),
    ("mov vr_setup, r0; mov vr_addr, r1", 1, 19, "different register files"),
    ("mov r0, 1 / 0", 1, 11, "division by zero"),
    (".rep i, 2\nnop\n", 1, 1, ".rep without .endr"),
    (".macro m, a\nmov a, 1\n.endm\nm 5", 2, 5, "destination of mov must be a register"),
    ("nop; thrend; ldtmu0", 1, 14, "one signal per instruction"),
    ("fadd r0, r1, 2; ldtmu0", 1, 17, "signal cannot be combined with a small immediate"),
    ("mov r0, vpm_setup(17, 1, 0)", 1, 9, "num must be an integer in 0..16"),
    (".include \"missing.qinc\"", 1, 10, "cannot find include file"),
    ("mov r0, sacq(16)", 1, 9, "semaphore must be an integer in 0..15"),
    ("frobnicate r0, r1", 1, 1, "unknown instruction or macro frobnicate"),
])
def test_errors_name_file_line_column(source, line, column, message):
    with pytest.raises(AssembleError) as info:
        qpuasm.assemble(source, filename="k.qasm", check=False)
    err = info.value
    assert (err.filename, err.line, err.column) == ("k.qasm", line, column), str(err)
    assert message in err.message
    text = str(err).splitlines()
    assert text[0].startswith(f"k.qasm:{line}:{column}: error: ")
    assert text[2].index("^") - 4 == column - 1    # caret under the column


def test_macro_error_notes_the_expansion():
    with pytest.raises(AssembleError) as info:
        qpuasm.assemble(".macro m, a\n  add a, a, 100\n.endm\nnop\nm r0", filename="k.qasm", check=False)
    assert info.value.line == 2 and "in expansion of macro m at k.qasm:5" in info.value.message


def test_program_to_bytes_is_little_endian_low_word_first():
    program = qpuasm.assemble("nop", check=False)
    assert program.to_bytes() == bytes.fromhex("00709e00e7090010")


def test_hazard_errors_are_raised_and_warnings_kept():
    with pytest.raises(AssembleError, match=r"rule 1"):
        qpuasm.assemble("mov ra1, r0\nmov r1, ra1")
    program = qpuasm.assemble("mov r0, r1; mov r1, r0 >> 1")     # rotation of a written accumulator? no
    assert program.diagnostics == []
    program = qpuasm.assemble("mov.ifz vpm, r0")
    assert [d.rule for _, d in program.diagnostics] == [18]
    with pytest.raises(AssembleError, match=r"rule 18"):
        qpuasm.assemble("mov.ifz vpm, r0", werror=True)


def test_rebinding_a_register_name_is_seen_by_later_lines():
    """Slots naming only registers are evaluated once; rebinding such a name must still take effect."""
    source = "mov r0, r1\n.set r1, r2\nmov r0, r1\n.macro m, r1\nmov r0, r1\n.endm\nm r3\n.rep r1, 1\nmov r0, r1\n.endr"
    assert words(source) == words("mov r0, r1\nmov r0, r2\nmov r0, r3\nmov r0, 0")


def test_symbols_are_read_at_each_use():
    source = ".set K, 1\nadd r0, r0, K\n.set K, 2\nadd r0, r0, K\n.rep i, 2\nadd r0, r0, i\n.endr"
    assert words(source) == words("add r0, r0, 1\nadd r0, r0, 2\nadd r0, r0, 0\nadd r0, r0, 1")


def test_equal_numbers_of_different_types_stay_apart():
    """1 and 1.0 (and 8 and 8.0) are different small immediates even though Python calls them equal."""
    source = "read 8\nread 8.0\nadd r0, r1, 1\nadd r0, r1, 1.0\nmov r0, 1\nmov r0, 1.0\nmov r0, -0.0\nmov r0, 0.0"
    got = words(source)
    assert len(set(got)) == len(got)
    assert got == [one(line) for line in source.splitlines()]
