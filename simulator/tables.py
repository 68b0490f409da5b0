"""Constants the compiled core reads, derived from qpuasm.isa and the decoded program's columns
(program.py): per-opcode property arrays from isa.OPS, the condition tables as integer columns,
setup-word fields, signal and mode codes. Nothing here is written by hand twice: each comes from
its row in isa.py.
"""

from __future__ import annotations

import numpy as np

from qpuasm import isa

from . import program as P
from .jit import jit
from .packing import ADD_OP, OTHER_OP, SUB_OP
from .vpm import field_of

# The condition tables of isa.py as columns of integers, per cond (and cond_br) code: the flag read
# (-1: none), the value that passes, and (branches) 1 when every lane must pass.
COND_FLAG = tuple(isa.FLAGS.index(f) if f else -1 for f, _ in isa.CONDITION_TESTS)
COND_WANTS = tuple(want for _, want in isa.CONDITION_TESTS)
BRANCH_FLAG = tuple(isa.FLAGS.index(t[0]) if t and t[0] else -1 for t in isa.BRANCH_TESTS)
BRANCH_WANTS = tuple(t[1] if t else 0 for t in isa.BRANCH_TESTS)
BRANCH_ALL = tuple(1 if t and t[2] else 0 for t in isa.BRANCH_TESTS)
_NO_OP = isa.Op("")                                              # a reserved code's column values
_ADD_ROWS = [op or _NO_OP for op in isa.ADD_TABLE]
_MUL_ROWS = [op or _NO_OP for op in isa.MUL_TABLE]
ADD_RESERVED = np.array([op is None for op in isa.ADD_TABLE], dtype=np.bool_)
ADD_UNARY = np.array([op.unary for op in _ADD_ROWS], dtype=np.bool_)
ADD_FLOAT_INPUT = np.array([op.float_in for op in _ADD_ROWS], dtype=np.bool_)
ADD_FLOAT_RESULT = np.array([op.float_out for op in _ADD_ROWS], dtype=np.bool_)
_OVERFLOW = {"": OTHER_OP, "add": ADD_OP, "sub": SUB_OP}
ADD_SATURATION = np.array([_OVERFLOW[op.overflow] for op in _ADD_ROWS], dtype=np.int64)
MUL_FLOAT_INPUT = np.array([op.float_in for op in _MUL_ROWS], dtype=np.bool_)
MUL_FLOAT_RESULT = np.array([op.float_out for op in _MUL_ROWS], dtype=np.bool_)
FTOI = isa.ADD_OP_CODES["ftoi"]
MOV_ADD, MOV_MUL = isa.ADD_OP_CODES[isa.MOV_ADD_OP], isa.MUL_OP_CODES[isa.MOV_MUL_OP]
SMALL_IMM_BITS = np.array(isa.SMALL_IMM_BITS, dtype=np.int64)
BRANCH_RESERVED = np.array([c is None for c in isa.BRANCH_CONDITIONS], dtype=np.bool_)
per_element_value = jit(isa.per_element_value, inline=True)     # the layout of §12, written once
LDI_PER_ELEMENT_SIGNED = isa.LDI_MODE_CODES["ldipes"]
LDI_PER_ELEMENT_UNSIGNED = isa.LDI_MODE_CODES["ldipeu"]
SIG_LDTMU0, SIG_LDTMU1 = isa.SIGNAL_CODES["ldtmu0"], isa.SIGNAL_CODES["ldtmu1"]
SIG_THREND, SIG_BKPT = isa.SIGNAL_CODES["thrend"], isa.SIGNAL_CODES["bkpt"]
VPM_SETUP_ID = field_of(isa.VPM_SETUP_ID)
VDW_STRIDE_FIELD = field_of(isa.VDW_STRIDE)
VDR_EXT_ID = field_of(isa.VDR_EXT_ID)
VDR_MPITCHB = field_of(isa.VDR_MPITCHB_IN_PRACTICE)
VDR_MPITCHB_DOCUMENTED = isa.VDR_MPITCHB.mask
VDW_HORIZ_BIT = 1 << isa.VDW_HORIZ.lo
VDR_VERT_BIT = 1 << isa.VDR_VERT.lo
VDR_ID = field_of(isa.VDR_ID)
# Instruction fields by column of the decoded program.
_C = P.COLUMN
C_SIG, C_UNPACK, C_PM, C_PACK, C_COND_ADD, C_COND_MUL, C_SF, C_WS = (
    _C["sig"], _C["unpack"], _C["pm"], _C["pack"], _C["cond_add"], _C["cond_mul"], _C["sf"], _C["ws"])
C_WADDR_ADD, C_WADDR_MUL, C_OP_MUL, C_OP_ADD, C_RADDR_A, C_RADDR_B = (
    _C["waddr_add"], _C["waddr_mul"], _C["op_mul"], _C["op_add"], _C["raddr_a"], _C["raddr_b"])
C_ADD_A, C_ADD_B, C_MUL_A, C_MUL_B, C_LDI_MODE, C_IMM, C_SA, C_SEMAPHORE = (
    _C["add_a"], _C["add_b"], _C["mul_a"], _C["mul_b"], _C["ldi_mode"], _C["imm"], _C["sa"], _C["semaphore"])
C_COND_BR, C_REL, C_REG = _C["cond_br"], _C["rel"], _C["reg"]
