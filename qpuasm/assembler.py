"""Assembly text -> a Program: the instructions of the first pass, the second pass, `assemble`.

The syntax is vc4asm's / Broadcom qasm's (grammar.lark). Each distinct line is parsed once (Lark,
LALR) into a small tuple AST and cached; the preprocessor (directives.py) expands `.macro`, `.rep`,
`.if` and `.include`; each instruction's operands are evaluated (expressions.py) and its slots go to
`encode.encode_line`, which applies Broadcom's encoding defaults. Forward label references are
resolved in a second pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import decode, encode, isa
from .directives import Directives, split_lines
from .encode import encode_line
from .expressions import ForwardReference, LineError, Scope, SourceLine
from .line import IMMEDIATE_OPS, UNIT_PREFIXES, AluOp, Branch, EncodeError, Line, describe
from .operands import Label, Reg
from .parser import COMMENT_PATTERN, ParseFailure, parse_line
from .program import AssembleError, Place, Program

# The largest program assembled: 16 MiB of code. The QPUs fetch code from GPU memory, which the
# firmware hands out from the GPU split (gpu_mem=128 is what the field runs with: ecosystem.md §B),
# so a larger program could not be placed; no real kernel comes near (GPU_FFT's largest is 2,300).
MAX_INSTRUCTIONS = 1 << 21


@dataclass
class _Record:
    """One instruction of the first pass: its slots (values or deferred evaluations). Its address
    is its index in `_Assembler.records` times 8; repetitions of a `.rep` body may share records."""

    slots: list
    columns: list[int]
    where: SourceLine
    expansion: tuple = ()


class _Assembler(Directives):
    """Instructions: each slot evaluated (or deferred to the second pass), slots paired into
    instructions, and in `finish` every record encoded at its address."""

    def __init__(self, defines: Mapping[str, object], include_path: Iterable[str]):
        super().__init__(dict(defines), include_path)
        self.records: list[_Record] = []
        self.merge_next = False
        self.shared: set[int] = set()                # ids of records that several addresses share

    @property
    def pc(self) -> int:
        return len(self.records) * isa.INSTRUCTION_BYTES

    def instruction(self, statement: tuple, scope: Scope) -> None:
        _, slots, lead, trail = statement
        if not slots:                     # a lone `;`: the next line continues the previous one
            self.merge_next = bool(self.records)
            return
        if len(slots) == 1 and slots[0][0] in self.macros and not lead and not trail:
            self._expand_macro(slots[0], scope)
            return
        values = []
        columns = []
        pc = self.pc
        for slot in slots:
            columns.append(slot[3])
            try:
                values.append(self._evaluate_slot(slot, scope, pc))
            except ForwardReference:
                values.append(("deferred", slot, scope.flatten(), dict(self.symbols)))
        self.emit(values, columns, merge_prev=lead)
        self.merge_next = trail

    def emit(self, values: list, columns: list[int], merge_prev: bool) -> None:
        if (merge_prev or self.merge_next) and self.records:
            last = self.records[-1]         # copied: a repeated block's records are shared
            self.records[-1] = replace(last, slots=last.slots + values, columns=last.columns + columns)
            self.merge_next = False
            return
        if merge_prev:
            raise LineError("a leading `;` continues the previous instruction, but there is none", columns[0])
        self.check_size(len(self.records) + 1)
        self.records.append(_Record(values, columns, self.where, tuple(self.expansion)))
        self.merge_next = False

    def check_size(self, instructions: int) -> None:
        if instructions > MAX_INSTRUCTIONS:
            raise LineError(f"the program exceeds {MAX_INSTRUCTIONS:,} instructions ({instructions:,}); "
                         "the code must fit in GPU memory")

    def _evaluate_slot(self, slot: tuple, scope: Scope, pc: int):
        """`_slot` for the first pass, remembering slots whose value depends only on their text."""
        value = self.pure_slots.get(slot)
        if value is not None and not (self.rebound_registers and _names_in(slot) & self.rebound_registers):
            return value
        self.impure = False
        value = self._slot(slot, scope, final=False, pc=pc)
        if not self.impure and not (self.rebound_registers and _names_in(slot) & self.rebound_registers):
            self.pure_slots[slot] = value
        return value

    def _slot(self, slot: tuple, scope: Scope, final: bool, pc: int):
        """Evaluate one slot into an AluOp, a Branch, ("signal", name) or ("read", value)."""
        name, suffixes, operands, column = slot
        kind, op, unit, cond, setf = _slot_header(name, suffixes, column)
        if kind == "signal":
            if operands:
                raise LineError(f"signal {name} takes no operand", column)
            return ("signal", op)
        values = [self.evaluate(ast, scope, final, pc) for ast in operands]
        if kind == "read":
            if len(values) != 1:
                raise LineError("read takes one operand", column)
            return ("read", values[0])
        if kind == "branch":
            return self._branch(op == "brr", suffixes, values, column)
        dst = None
        srcs: tuple = ()
        if values:
            dst, srcs = values[0], tuple(values[1:])
            if not isinstance(dst, Reg):
                raise LineError(f"the destination of {name} must be a register, not {describe(dst)}", operands[0][-1])
            if dst.rotate or (dst.unpack and not dst.pack):
                raise LineError("a destination takes a pack suffix, not unpack or rotation", operands[0][-1])
            if dst.unpack:
                dst = replace(dst, unpack="")
            packed = [i for i, s in enumerate(srcs) if isinstance(s, Reg) and s.pack]
            for index in packed:
                if not srcs[index].unpack:
                    raise LineError(f".{srcs[index].pack} is a pack mode: it applies to a destination",
                                 operands[index + 1][-1])
            if packed:
                srcs = tuple(replace(s, pack="") if isinstance(s, Reg) else s for s in srcs)
        return AluOp(op, dst=dst, srcs=srcs, cond=cond, setf=setf, unit=unit)

    def _branch(self, relative: bool, suffixes: list[str], values: list, column: int) -> tuple:
        cond = ""
        for suffix in suffixes:
            s = suffix.lower()
            if s in isa.BRANCH_CONDITION_CODES and s:
                cond = s
            elif s != "setf":
                raise LineError(f"unknown branch condition .{suffix} (.allz .allnz .anyz .anynz .alln .allnn .anyn "
                             ".anynn .allc .allcc .anyc .anycc)", column)
        if not values:
            raise LineError("a branch needs a target", column)
        target = values[-1]
        rest = values[:-1]
        reg = None
        if isinstance(target, Reg):
            reg, target = target, 0
        elif rest and isinstance(rest[-1], Reg) and rest[-1].physical_file() == "a" and len(rest) >= 2:
            reg = rest.pop()
        if not isinstance(target, (int, Label)):
            raise LineError(f"a branch target is a label, an offset or a register, not {describe(target)}", column)
        if not rest:
            raise LineError("a branch needs a link destination first (write - for none)", column)
        if len(rest) > 2 or not all(isinstance(r, Reg) for r in rest):
            raise LineError("a branch takes one or two link registers, then [register,] target", column)
        return Branch(relative=relative, target=target, reg=reg, links=tuple(rest), cond=cond)

    # ---- second pass ----------------------------------------------------------------------------

    def place(self, index: int) -> Place:
        """Where instruction `index` was written: its line and the column of its first slot."""
        record = self.records[index]
        return Place(record.where.filename, record.where.lineno, record.columns[0] if record.columns else 1)

    def finish(self) -> tuple[list[int], list[SourceLine]]:
        words = []
        sources = []
        encoded: dict[int, int] = {}        # id of a shared record -> its word (see _repeat)
        for index, record in enumerate(self.records):
            known = encoded.get(id(record))
            if known is not None:
                words.append(known)
                sources.append(record.where)
                continue
            address = index * isa.INSTRUCTION_BYTES
            self.where = record.where
            line = Line()
            for index, value in enumerate(record.slots):
                if isinstance(value, tuple) and value[0] == "deferred":
                    _, slot, scope, symbols = value
                    saved, self.symbols = self.symbols, symbols
                    try:
                        value = self._slot(slot, scope, final=True, pc=address)
                    finally:
                        self.symbols = saved
                self._place(line, value, record.columns[index])
            try:
                words.append(encode_line(line, address))
            except EncodeError as exc:
                slot = exc.slot if exc.slot is not None and exc.slot < len(record.columns) else 0
                raise LineError(str(exc), record.columns[slot] if record.columns else 1, record.where,
                             record.expansion) from None
            sources.append(record.where)
            if id(record) in self.shared:           # address-free (_repeats): the same word everywhere
                encoded[id(record)] = words[-1]
        return words, sources

    @staticmethod
    def _place(line: Line, value: object, column: int) -> None:
        if isinstance(value, Line):
            if line.ops or line.raw is not None:
                raise LineError("a .long word cannot be merged with another instruction", column)
            line.raw = value.raw
        elif isinstance(value, AluOp):
            line.ops.append(value)
        elif isinstance(value, Branch):
            if line.branch is not None:
                raise LineError("one branch per instruction", column)
            line.branch = value
        elif value[0] == "signal":
            if line.signal is not None:
                raise LineError("one signal per instruction", column)
            line.signal = value[1]
        else:
            line.reads.append(value[1])


@lru_cache(maxsize=4096)
def _names_in(node: object) -> frozenset[str]:
    """Every name an AST mentions."""
    if isinstance(node, tuple):
        if len(node) == 3 and node[0] == "name":
            return frozenset((node[1],))
        return frozenset().union(*(_names_in(child) for child in node))
    return frozenset()


@lru_cache(maxsize=4096)
def _slot_header(name: str, suffixes: tuple[str, ...], column: int) -> tuple[str, str, str | None, str | None, bool]:
    """(kind, operation, forced unit, condition, setf) of a slot's mnemonic and suffixes, where kind
    is "signal", "read", "branch" or "alu". Decided once per distinct spelling."""
    lname = name.lower()
    if lname in isa.SIGNAL_CODES:
        if suffixes:
            raise LineError(f"signal {name} takes no suffix", column)
        return "signal", lname, None, None, False
    if lname == "read":
        if suffixes:
            raise LineError("read takes no suffix", column)
        return "read", lname, None, None, False
    if lname in ("bra", "brr"):
        return "branch", lname, None, None, False
    unit = None
    if lname[:1] in UNIT_PREFIXES and lname[1:] in ("mov", "nop"):
        unit, lname = UNIT_PREFIXES[lname[0]], lname[1:]
    if not (lname in isa.ADD_OP_CODES or lname in isa.MUL_OP_CODES or lname == "mov" or lname in IMMEDIATE_OPS):
        raise LineError(f"unknown instruction or macro {name}", column)
    cond = None
    setf = False
    for suffix in suffixes:
        s = suffix.lower()
        if s == "setf":
            setf = True
        elif s in isa.CONDITION_CODES or s == "always":
            if cond is not None:
                raise LineError(f"{name} has two conditions", column)
            cond = s
        else:
            raise LineError(f"unknown suffix .{suffix} (conditions: .ifz .ifnz .ifn .ifnn .ifc .ifcc .never; "
                         "flags: .setf)", column)
    return "alu", lname, unit, cond, setf


def clear_caches() -> None:
    """Forget parsed lines and remembered encodings/decodings (benchmarks time cold runs)."""
    parse_line.cache_clear()
    _slot_header.cache_clear()
    _names_in.cache_clear()
    encode.clear_caches()
    decode.clear_caches()


def _define_value(name: str, value: object) -> object:
    """A pre-set symbol (`-D NAME=VALUE`): numbers and registers as they are, text as an expression."""
    if not isinstance(value, str):
        return value
    try:
        _, statement = parse_line(f".set {name}, {value}")
        return _Assembler({}, []).evaluate(statement[2][1], Scope({}))
    except (ParseFailure, LineError) as exc:
        raise AssembleError(f"-D {name}={value}: {exc}", "<command line>", 0, 0) from None


def assemble(text: str, filename: str = "<input>", defines: Mapping[str, object] | None = None,
             include_path: Iterable[str] = (), check: bool = True, werror: bool = False) -> Program:
    """Assemble vc4asm/Broadcom-syntax source into a Program.

    `defines` pre-sets symbols (like `-D NAME=VALUE`); `include_path` is searched by `.include`.
    With `check` the hazard checker runs: errors raise AssembleError, warnings are kept in
    `Program.diagnostics` (and raise too with `werror`)."""
    asm = _Assembler({k: _define_value(k, v) for k, v in (defines or {}).items()}, include_path)
    lines = split_lines(text, filename)
    try:
        asm.run(lines, Scope({}))
        if asm.merge_next:
            raise LineError("a trailing `;` continues into the next instruction, but there is none")
        words, sources = asm.finish()
        exported = {}
        for name, where, column in asm.globals:
            asm.where = where
            if name not in asm.labels:
                raise LineError(f".global names an undefined label {name}", column)
            exported[name] = asm.labels[name]
    except LineError as exc:
        where = exc.where or asm.where
        notes = [f"in expansion of macro {name} at {site.filename}:{site.lineno}" for name, site in exc.expansion]
        message = str(exc) + (f" ({'; '.join(reversed(notes))})" if notes else "")
        raise AssembleError(message, where.filename, where.lineno, exc.column, where.text) from None
    except RecursionError:
        raise AssembleError("expression or expansion nested too deeply", asm.where.filename, asm.where.lineno, 1,
                            asm.where.text) from None
    distinct = {id(s): s for s in sources}            # repeated instructions share their source line
    texts = {key: COMMENT_PATTERN.sub("", s.text).strip() for key, s in distinct.items()}
    program = Program(np.array(words, dtype=np.uint64), dict(asm.labels), exported,
                      [texts[id(s)] for s in sources])
    if check:
        from .checks import check as run_checks
        from .checks import diagnostic_message
        diagnostics = run_checks(program.words)
        for diag in diagnostics:
            place = asm.place(diag.address // isa.INSTRUCTION_BYTES)
            if diag.severity == "error" or werror:
                raise AssembleError(diagnostic_message(diag), place.filename, place.line, place.column,
                                    sources[diag.address // isa.INSTRUCTION_BYTES].text)
            program.diagnostics.append((place, diag))
    return program


def assemble_file(path: str | os.PathLike, defines: Mapping[str, object] | None = None,
                  include_path: Iterable[str] = (), check: bool = True, werror: bool = False) -> Program:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AssembleError(f"cannot read {path}: {exc.strerror}", str(path), 0, 0) from None
    return assemble(text, str(path), defines, include_path, check, werror)
