"""bin / hex / C / ELF output, and bin / hex input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

import qpuasm
from qpuasm import formats
from qpuasm.instr import DisassembleError

SOURCE = """
::entry
    mov r0, unif
:loop
    sub.setf r0, r0, 1
    brr.anynz -, r:loop
    nop
    nop
    nop
.global done
:done
    nop; nop; thrend
    nop
    nop
"""


@pytest.fixture
def program():
    return qpuasm.assemble(SOURCE, filename="k.qasm")


def test_bin_round_trip(program):
    data = formats.to_bin(program)
    assert len(data) == 8 * len(program)
    assert data[:8] == int(program.words[0]).to_bytes(8, "little")
    assert np.array_equal(formats.read_bin(data), program.words)


def test_hex_matches_gpu_fft_layout_and_reads_back(program):
    text = formats.to_hex(program)
    first = text.splitlines()[0]
    word = int(program.words[0])
    assert first == f"0x{word & 0xFFFFFFFF:08x}, 0x{word >> 32:08x}, // mov r0, unif"
    assert np.array_equal(formats.read_hex(text), program.words)


def test_c_array(program):
    text = formats.to_c(program, "kernel")
    assert "const uint32_t kernel[18] = {" in text
    assert "#define kernel_entry 0u" in text and "#define kernel_done 48u" in text
    assert text.count("0x") == 18


def test_elf_object_read_with_pyelftools(program):
    elf = ELFFile(io.BytesIO(formats.to_elf(program, "kernel")))
    assert elf["e_machine"] == "EM_ARM" and elf["e_type"] == "ET_REL" and elf.elfclass == 32
    section = elf.get_section_by_name(".rodata.qpu")
    assert section.data() == program.to_bytes()
    symbols = {s.name: s for s in elf.get_section_by_name(".symtab").iter_symbols()}
    assert symbols["kernel"]["st_value"] == 0 and symbols["kernel"]["st_size"] == 8 * len(program)
    assert symbols["kernel_done"]["st_value"] == 48
    assert symbols["kernel_entry"]["st_info"]["bind"] == "STB_GLOBAL"


@pytest.mark.parametrize("data, message", [
    (b"\x00" * 12, "not a multiple of 8"),
])
def test_bad_binary(data, message):
    with pytest.raises(DisassembleError, match=message):
        formats.read_bin(data)


@pytest.mark.parametrize("text, message", [
    ("0x009e7000,", "instructions need"),
    ("0x009e7000, 0x100009e7,\n0x1234, zz", "line 2: unexpected 'z'"),
    ("0x1009e70001, 0x0", "not a 32-bit word"),
])
def test_bad_hex(text, message):
    with pytest.raises(DisassembleError, match=message):
        formats.read_hex(text)
