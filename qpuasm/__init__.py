"""qpuasm: the VideoCore IV QPU instruction set: assembler, disassembler, builder and hazard checks."""

from .assembler import assemble, assemble_file, clear_caches
from .checks import Diagnostic, check
from .disasm import disassemble
from .instr import DisassembleError, Instruction, decode
from .program import AssembleError, Program

__all__ = [
    "AssembleError", "DisassembleError", "Diagnostic", "Instruction", "Program",
    "assemble", "assemble_file", "check", "clear_caches", "decode", "disassemble",
]
