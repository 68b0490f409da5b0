"""Assembly text -> instructions: directives, macros, labels, expressions, ADD/MUL pairing.

The syntax is vc4asm's / Broadcom qasm's (grammar.lark). Each distinct line is parsed once (Lark,
LALR) into a small tuple AST and cached; the interpreter below expands `.macro`, `.rep`, `.if` and
`.include`, evaluates operands and hands each instruction's slots to `slots.encode_line`, which
applies Broadcom's encoding defaults. Forward label references are resolved in a second pass.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import isa, slots
from .builtins import BUILTINS, BuiltinError
from .operands import REGISTERS, Label, PerElement, Reg
from .parser import COMMENT_PATTERN, ParseFailure, parse_line
from .slots import IMMEDIATE_OPS, UNIT_PREFIXES, AluOp, Branch, EncodeError, Line, describe, encode_line

SHOWN = 160                 # characters of a source line (and of a message) an error shows
# The largest program assembled: 16 MiB of code. The QPUs fetch code from GPU memory, which the
# firmware hands out from the GPU split (gpu_mem=128 is what the field runs with: ecosystem.md §B),
# so a larger program could not be placed; no real kernel comes near (GPU_FFT's largest is 2,300).
MAX_INSTRUCTIONS = 1 << 21


class AssembleError(Exception):
    """An error in assembly source, with its position: str() is `file:line:col: error: message`
    followed by the source line and a caret under the column."""

    def __init__(self, message: str, filename: str = "<input>", line: int = 0, column: int = 0,
                 source_line: str | None = None, kind: str = "error"):
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column
        self.source_line = source_line
        self.kind = kind
        super().__init__(self.format())

    def format(self) -> str:
        message = self.message if len(self.message) <= SHOWN else self.message[:SHOWN] + " ..."
        where = f"{self.filename}:{self.line}:{self.column}" if self.line else self.filename   # a file, not a line
        text = f"{where}: {self.kind}: {message}"
        if self.source_line is not None:
            line, column = self.source_line.rstrip(), max(self.column - 1, 0)
            start = max(0, min(column - SHOWN // 2, len(line) - SHOWN))     # a window around the column
            shown = ("..." if start else "") + line[start:start + SHOWN] + ("..." if start + SHOWN < len(line) else "")
            caret = " " * (column - start + (3 if start else 0)) + "^"
            text += f"\n    {shown}\n    {caret}"
        return text


class Place(NamedTuple):
    """A position in source text (column 0: the line is known, the column is not)."""

    filename: str
    line: int
    column: int


@dataclass
class Program:
    """Assembled QPU code."""

    words: np.ndarray                                  # numpy.uint64, one element per instruction
    labels: dict[str, int] = field(default_factory=dict)     # label -> byte offset
    globals: dict[str, int] = field(default_factory=dict)    # exported labels (`.global`, `::name`)
    sources: list[str] = field(default_factory=list)         # source text of each instruction
    diagnostics: list = field(default_factory=list)          # (Place, Diagnostic) of the checker's warnings

    def to_bytes(self) -> bytes:
        return self.words.astype("<u8").tobytes()

    def __len__(self) -> int:
        return len(self.words)


# ==== evaluation ==================================================================================


class _Error(Exception):
    """An error at a column of a line; `where` and `expansion` (the macro calls that led there) are
    filled in on the way out when the error happened inside a macro or in the second pass."""

    def __init__(self, message: str, column: int = 1, where: _SourceLine | None = None,
                 expansion: tuple = ()):
        super().__init__(message)
        self.column = column
        self.where = where
        self.expansion = expansion


class _ForwardReference(Exception):
    """A label that is not defined yet: the slot is evaluated again after the first pass."""


@dataclass
class _Thunk:
    """A macro argument: evaluated where it is used (so `r:label` is relative to that place)."""

    ast: tuple
    scope: _Scope


_MISSING = object()


@dataclass
class _Scope:
    values: dict[str, object]
    parent: _Scope | None = None

    def lookup(self, name: str) -> object:
        """The value bound to `name` in this scope or an enclosing one, or _MISSING."""
        scope: _Scope | None = self
        while scope is not None:
            value = scope.values.get(name, _MISSING)
            if value is not _MISSING:
                return value
            scope = scope.parent
        return _MISSING

    def flatten(self) -> _Scope:
        chain = []
        scope: _Scope | None = self
        while scope is not None:
            chain.append(scope.values)
            scope = scope.parent
        merged: dict[str, object] = {}
        for values in reversed(chain):
            merged.update(values)
        return _Scope(merged)


def _c_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


_INT_OPS = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": _c_div, "%": lambda a, b: a - _c_div(a, b) * b, "**": lambda a, b: a ** b,
    "<<": lambda a, b: a << b, ">>": lambda a, b: a >> b,
    "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
}
_FLOAT_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
              "/": lambda a, b: a / b, "**": lambda a, b: a ** b}
_COMPARE = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
_MATH = {"sin": math.sin, "cos": math.cos, "tan": math.tan, "sqrt": math.sqrt, "log2": math.log2,
         "exp2": lambda x: 2.0 ** x, "abs": abs, "floor": math.floor, "ceil": math.ceil}

_BLOCK_DIRECTIVE = re.compile(r"^\s*(?:::?[A-Za-z0-9_]+\s+)*\.([A-Za-z_]+)\b")


@dataclass
class _SourceLine:
    text: str
    filename: str
    lineno: int


@dataclass
class _Record:
    """One instruction of the first pass: its slots (values or deferred evaluations). Its address
    is its index in `_Assembler.records` times 8; repetitions of a `.rep` body may share records."""

    slots: list
    columns: list[int]
    where: _SourceLine
    expansion: tuple = ()


class _Assembler:
    def __init__(self, defines: Mapping[str, object], include_path: Iterable[str]):
        self.symbols: dict[str, object] = {}
        self.macros: dict[str, tuple[list[str], list[_SourceLine], _SourceLine]] = {}
        self.include_path = [Path(p) for p in include_path]
        self.labels: dict[str, int] = {}
        self.local_labels: dict[str, list[int]] = {}
        self.globals: list[tuple[str, _SourceLine, int]] = []
        self.records: list[_Record] = []
        self.merge_next = False
        self.where = _SourceLine("", "<input>", 0)
        self.expansion: list[tuple[str, _SourceLine]] = []    # (macro, call site) of open expansions
        # Slots whose value depends on nothing but their text (registers, numbers, built-ins) are
        # evaluated once: `impure` records a lookup of a symbol, macro argument or label.
        self.pure_slots: dict[tuple, object] = {}
        self.impure = False
        self.rebound_registers: set[str] = set()     # register names ever bound by .set/.macro/.rep
        self.depth = 0
        self.label_lookups = 0      # counts label lookups, which depend on the address (see _repeat)
        self.shared: set[int] = set()                # ids of records that several addresses share
        for name, value in defines.items():
            self.symbols[name] = value

    # ---- addresses and labels -------------------------------------------------------------------

    @property
    def pc(self) -> int:
        return len(self.records) * isa.INSTRUCTION_BYTES

    def define_label(self, name: str, column: int, exported: bool) -> None:
        if name.isdigit():
            self.local_labels.setdefault(name, []).append(self.pc)
            return
        if name in self.labels:
            raise _Error(f"label {name} is already defined", column)
        self.labels[name] = self.pc
        if exported:
            self.globals.append((name, self.where, column))

    def label_address(self, name: str, column: int, final: bool, pc: int) -> int:
        self.label_lookups += 1
        if name[:-1].isdigit() and name[-1] in "fb":
            addresses = self.local_labels.get(name[:-1], [])
            if name[-1] == "b":
                before = [a for a in addresses if a <= pc]
                if before:
                    return before[-1]
            else:
                after = [a for a in addresses if a > pc]
                if after:
                    return after[0]
                if not final:
                    raise _ForwardReference(name)
            raise _Error(f"local label {name[:-1]} is not defined {'before' if name[-1] == 'b' else 'after'} "
                         "this point", column)
        if name in self.labels:
            return self.labels[name]
        if not final:
            raise _ForwardReference(name)
        raise _Error(f"undefined label :{name}", column)

    # ---- expressions ----------------------------------------------------------------------------

    def evaluate(self, node: tuple, scope: _Scope, final: bool = False, pc: int | None = None) -> object:
        pc = self.pc if pc is None else pc
        kind = node[0]
        if kind == "name":
            return self._lookup(node[1], node[2], scope, final, pc)
        if kind == "int" or kind == "float":
            return node[1]
        if kind == "bin":                 # a left-leaning chain (a + b + c ...) folds in a loop, not deep
            chain = []
            while node[0] == "bin":
                chain.append(node)
                node = node[2]
            value = self.evaluate(node, scope, final, pc)
            for _, op, _, b, column in reversed(chain):
                if op == "&&":
                    value = int(self._truth(value, column) and self._truth(self.evaluate(b, scope, final, pc), column))
                elif op == "||":
                    value = int(self._truth(value, column) or self._truth(self.evaluate(b, scope, final, pc), column))
                else:
                    value = self._binary(op, value, self.evaluate(b, scope, final, pc), column)
            return value
        if kind == "un":
            _, op, a, column = node
            value = self.evaluate(a, scope, final, pc)
            return self._unary(op, value, column)
        if kind == "tern":
            _, cond, a, b, column = node
            chosen = a if self._truth(self.evaluate(cond, scope, final, pc), column) else b
            return self.evaluate(chosen, scope, final, pc)
        if kind == "call":
            _, name, args, column = node
            values = [self.evaluate(a, scope, final, pc) for a in args]
            return self._call(name, values, column)
        if kind == "vec":
            values = [self.evaluate(a, scope, final, pc) for a in node[1]]
            if not all(isinstance(v, int) for v in values):
                raise _Error("a per-element vector holds integers", node[2])
            return PerElement(tuple(values))
        if kind == "suffixed":            # a macro argument written with its own suffix
            return self._apply_suffixes(self.evaluate(node[1], scope, final, pc), node[2], node[1][-1])
        if kind in ("label_ref", "rel_label_ref"):
            self.impure = True
        if kind == "label_ref":
            return Label(node[1], self.label_address(node[1], node[2], final, pc))
        if kind == "rel_label_ref":
            return self.label_address(node[1], node[2], final, pc) - (pc + isa.BRANCH_LINK_OFFSET)
        raise _Error(f"{kind} is not allowed here", node[-1])

    def _lookup(self, name: str, column: int, scope: _Scope, final: bool, pc: int) -> object:
        value = scope.lookup(name)
        if value is _MISSING:
            value = self.symbols.get(name, _MISSING)
            if value is _MISSING:
                value = REGISTERS.get(name)
                if value is None:
                    raise _Error(f"undefined symbol {name}", column)
                return value
        self.impure = True
        if isinstance(value, _Thunk):
            return self.evaluate(value.ast, value.scope, final, pc)
        return value

    @staticmethod
    def _truth(value: object, column: int) -> bool:
        if isinstance(value, (int, float)):
            return bool(value)
        raise _Error(f"{describe(value)} is not a condition", column)

    def _binary(self, op: str, a: object, b: object, column: int) -> object:
        if isinstance(a, Reg):
            return self._register_op(op, a, b, column)
        if isinstance(a, Label) or isinstance(b, Label):
            return self._label_op(op, a, b, column)
        if op in _COMPARE and isinstance(a, (int, float)) and isinstance(b, (int, float)):
            return int(_COMPARE[op](a, b))
        if isinstance(a, int) and isinstance(b, int):
            if op in ("/", "%") and b == 0:
                raise _Error("division by zero", column)
            if op in ("<<", ">>") and b < 0:
                raise _Error("negative shift count", column)
            if op == "<<" and b > 64 or op == "**" and abs(b) > 64:
                raise _Error("constant too large", column)
            return _INT_OPS[op](a, b)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and op in _FLOAT_OPS:
            try:
                return float(_FLOAT_OPS[op](float(a), float(b)))
            except (ZeroDivisionError, OverflowError):
                raise _Error("invalid floating-point operation", column) from None
        raise _Error(f"operator {op} cannot combine {describe(a)} and {describe(b)}", column)

    def _register_op(self, op: str, reg: Reg, b: object, column: int) -> Reg:
        if op in ("+", "-") and isinstance(b, int):
            try:
                return reg.offset(b if op == "+" else -b)
            except ValueError as exc:
                raise _Error(str(exc), column) from None
        if op in ("<<", ">>"):
            try:
                return reg.rotated(op, b)
            except ValueError as exc:
                raise _Error(str(exc), column) from None
        raise _Error(f"operator {op} cannot be applied to register {reg.name}", column)

    @staticmethod
    def _label_op(op: str, a: object, b: object, column: int) -> object:
        if isinstance(a, Label) and isinstance(b, Label):
            if op == "-":
                return a.address - b.address
            if op in _COMPARE:
                return int(_COMPARE[op](a.address, b.address))
        if isinstance(a, Label) and isinstance(b, int) and op in ("+", "-"):
            return Label(a.name, a.address + (b if op == "+" else -b))
        if isinstance(b, Label) and isinstance(a, int) and op == "+":
            return Label(b.name, a + b.address)
        raise _Error(f"operator {op} cannot combine {describe(a)} and {describe(b)}", column)

    @staticmethod
    def _unary(op: str, value: object, column: int) -> object:
        if op == "-" and isinstance(value, (int, float)):
            return -value
        if op == "+" and isinstance(value, (int, float)):
            return value
        if op == "~" and isinstance(value, int):
            return ~value
        if op == "!" and isinstance(value, (int, float)):
            return int(not value)
        raise _Error(f"operator {op} cannot be applied to {describe(value)}", column)

    def _call(self, name: str, args: list[object], column: int) -> object:
        function = BUILTINS.get(name) or _MATH.get(name)
        if function is None:
            raise _Error(f"unknown function {name}", column)
        try:
            return function(*args)
        except BuiltinError as exc:
            raise _Error(f"{name}: {exc}", column) from None
        except (TypeError, ValueError, OverflowError) as exc:
            raise _Error(f"{name}: {exc}", column) from None

    # ---- lines, blocks, directives --------------------------------------------------------------

    def run(self, lines: list[_SourceLine], scope: _Scope) -> None:
        self.depth += 1
        if self.depth > 64:
            raise _Error("macros, repetitions or includes nested more than 64 deep")
        try:
            self._run(lines, scope)
        finally:
            self.depth -= 1

    def _run(self, lines: list[_SourceLine], scope: _Scope) -> None:
        conditions: list[list[bool]] = []     # per open .if: [this branch active, a branch was taken]
        i = 0
        while i < len(lines):
            line = lines[i]
            self.where = line
            i += 1
            active = all(c[0] for c in conditions)
            block = _BLOCK_DIRECTIVE.match(line.text)
            name = block.group(1).lower() if block else None
            if not active:
                if name in ("if", "ifset", "ifnset"):
                    conditions.append([False, True])
                elif name in ("else", "elseif", "endif"):
                    self._conditional(name, conditions, line, scope)
                continue
            if name in ("if", "ifset", "ifnset", "else", "elseif", "endif"):
                self._conditional(name, conditions, line, scope)
                continue
            if name in ("macro", "rep"):
                end = self._block_end(lines, i - 1, name, "endm" if name == "macro" else "endr")
                body = lines[i:end]
                i = end + 1
                if name == "macro":
                    self._define_macro(line, body)
                else:
                    self._repeat(line, body, scope)
                continue
            self.statement(line, scope)
        if conditions:
            raise _Error(".if without .endif")

    def _block_end(self, lines: list[_SourceLine], start: int, opener: str, closer: str) -> int:
        depth = 0
        for j in range(start, len(lines)):
            match = _BLOCK_DIRECTIVE.match(lines[j].text)
            word = match.group(1).lower() if match else None
            if word == opener:
                depth += 1
            elif word == closer:
                depth -= 1
                if depth == 0:
                    return j
        raise _Error(f".{opener} without .{closer}")

    def _directive_args(self, line: _SourceLine) -> tuple[str, list, int]:
        labels, statement = self._parse_line(line)
        if labels:
            raise _Error("a label cannot stand before a block directive", labels[0][2])
        assert statement is not None and statement[0] == "dir"
        return statement[1], statement[2], statement[3]

    def _conditional(self, name: str, conditions: list[list[bool]], line: _SourceLine, scope: _Scope) -> None:
        _, args, column = self._directive_args(line)
        if name in ("if", "ifset", "ifnset"):
            value = self._condition(name, args, column, scope)
            conditions.append([value, value])
        elif not conditions:
            raise _Error(f".{name} without .if", column)
        elif name == "endif":
            conditions.pop()
        else:
            frame = conditions[-1]
            outer_active = all(c[0] for c in conditions[:-1])
            if frame[1] or not outer_active:
                frame[0] = False
            else:
                frame[0] = name == "else" or self._condition("if", args, column, scope)
                frame[1] = frame[0]

    def _condition(self, name: str, args: list, column: int, scope: _Scope) -> bool:
        if len(args) != 1:
            raise _Error(f".{name} takes one argument", column)
        if name in ("ifset", "ifnset"):
            if args[0][0] != "name":
                raise _Error(f".{name} takes a symbol name", column)
            defined = args[0][1] in self.symbols or self._in_scope(args[0][1], scope)
            return defined if name == "ifset" else not defined
        return self._truth(self.evaluate(args[0], scope), args[0][-1])

    @staticmethod
    def _in_scope(name: str, scope: _Scope) -> bool:
        return scope.lookup(name) is not _MISSING

    def _define_macro(self, line: _SourceLine, body: list[_SourceLine]) -> None:
        _, args, column = self._directive_args(line)
        if not args or any(a[0] != "name" for a in args):
            raise _Error(".macro takes a name and parameter names", column)
        self.macros[args[0][1]] = ([a[1] for a in args[1:]], body, line)

    def _repeat(self, line: _SourceLine, body: list[_SourceLine], scope: _Scope) -> None:
        _, args, column = self._directive_args(line)
        if len(args) == 1:
            variable, count_ast = None, args[0]
        elif len(args) == 2 and args[0][0] == "name":
            variable, count_ast = args[0][1], args[1]
        else:
            raise _Error(".rep takes [variable,] count", column)
        count = self.evaluate(count_ast, scope)
        if not isinstance(count, int) or count < 0 or count > 1 << 20:
            raise _Error(f".rep count must be an integer in 0..{1 << 20}, not {count!r}", count_ast[-1])
        if variable:
            self._bind(variable)
        for n in range(count):
            watched = n == 1 and count > 2         # the second pass decides whether the rest are copies
            before = self._state() if watched else None
            start = len(self.records)
            self.run(body, _Scope({variable: n}, scope) if variable else scope)
            if watched and self._repeats(start, before):
                # The second pass changed nothing and emitted what the first did: the rest are copies.
                block = self.records[start:]
                self.where = line
                self._check_size(len(self.records) + len(block) * (count - 2))
                self.records.extend(block * (count - 2))
                self.shared.update(map(id, block))
                return

    def _state(self) -> tuple:
        """What a pass over a `.rep` body could change besides emitting records."""
        return (dict(self.symbols), dict(self.macros), len(self.labels), len(self.globals),
                sum(map(len, self.local_labels.values())), self.label_lookups, self.merge_next,
                len(self.rebound_registers))

    def _repeats(self, start: int, before: tuple) -> bool:
        """Whether the pass that emitted records[start:] is the same as the pass before it and left the
        state as it found it, with records that do not depend on their address (no branch, nothing
        deferred), so that every further pass would emit the same words."""
        block = self.records[start:]
        previous = self.records[start - len(block):start]
        if not block or start < len(block) or self._state() != before:
            return False
        if any(a.slots != b.slots or a.columns != b.columns for a, b in zip(block, previous, strict=True)):
            return False
        return all(map(_address_free, block))

    def _bind(self, name: str) -> None:
        """A name gets a value: if it is also a register name, memoized slots may be stale."""
        if name in REGISTERS and name not in self.rebound_registers:
            self.rebound_registers.add(name)
            self.pure_slots.clear()

    def _evaluate_slot(self, slot: tuple, scope: _Scope, pc: int):
        """`_slot` for the first pass, remembering slots whose value depends only on their text."""
        value = self.pure_slots.get(slot)
        if value is not None and not (self.rebound_registers and _names_in(slot) & self.rebound_registers):
            return value
        self.impure = False
        value = self._slot(slot, scope, final=False, pc=pc)
        if not self.impure and not (self.rebound_registers and _names_in(slot) & self.rebound_registers):
            self.pure_slots[slot] = value
        return value

    def _parse_line(self, line: _SourceLine):
        try:
            return parse_line(line.text)
        except ParseFailure as exc:
            raise _Error(str(exc), exc.column) from None

    def statement(self, line: _SourceLine, scope: _Scope) -> None:
        labels, statement = self._parse_line(line)
        for kind, name, column in labels:
            if self.merge_next:
                raise _Error("a label cannot stand between two merged lines (trailing `;`)", column)
            self.define_label(name, column, kind == "global_label")
        if statement is None:
            return
        if statement[0] == "dir":
            self.directive(statement, scope)
        else:
            self.instruction(statement, scope)

    def directive(self, statement: tuple, scope: _Scope) -> None:
        _, name, args, column = statement
        if name == "set":
            if len(args) != 2 or args[0][0] != "name":
                raise _Error(".set takes a name and a value", column)
            self._bind(args[0][1])
            self.symbols[args[0][1]] = self.evaluate(args[1], scope)
        elif name == "unset":
            for arg in args:
                self.symbols.pop(arg[1], None)
        elif name == "include":
            self._include(args, column)
        elif name in ("global", "globl"):
            for arg in args:
                if arg[0] != "name":
                    raise _Error(".global takes label names", arg[-1])
                self.globals.append((arg[1], self.where, arg[-1]))
        elif name == "assert":
            for arg in args:
                if not self._truth(self.evaluate(arg, scope), arg[-1]):
                    raise _Error("assertion failed", arg[-1])
        elif name == "long":
            self._raw_words(args, scope, column)
        elif name in ("endm", "endr"):
            raise _Error(f".{name} without .{'macro' if name == 'endm' else 'rep'}", column)
        else:
            raise _Error(f"unknown directive .{name}", column)

    def _raw_words(self, args: list, scope: _Scope, column: int) -> None:
        values = [self.evaluate(a, scope) for a in args]
        if len(values) % 2 or not all(isinstance(v, int) and 0 <= v < 1 << 32 for v in values):
            raise _Error(".long takes 32-bit words in (low, high) pairs: QPU instructions are 64-bit", column)
        for low, high in zip(values[::2], values[1::2], strict=True):
            self._emit([Line(raw=high << 32 | low)], [column], merge_prev=False)

    def _include(self, args: list, column: int) -> None:
        if len(args) != 1 or args[0][0] not in ("str", "path"):
            raise _Error('.include takes "file" or <file>', column)
        kind, name, _ = args[0]
        here = Path(self.where.filename).parent if self.where.filename != "<input>" else Path(".")
        candidates = ([here / name] if kind == "str" else []) + [p / name for p in self.include_path]
        for path in candidates:
            if path.is_file():
                self.run(read_source(path), _Scope({}))
                return
        raise _Error(f"cannot find include file {name}", args[0][-1])

    # ---- instructions ---------------------------------------------------------------------------

    def instruction(self, statement: tuple, scope: _Scope) -> None:
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
            except _ForwardReference:
                values.append(("deferred", slot, scope.flatten(), dict(self.symbols)))
        self._emit(values, columns, merge_prev=lead)
        self.merge_next = trail

    def _emit(self, values: list, columns: list[int], merge_prev: bool) -> None:
        if (merge_prev or self.merge_next) and self.records:
            last = self.records[-1]         # copied: a repeated block's records are shared
            self.records[-1] = replace(last, slots=last.slots + values, columns=last.columns + columns)
            self.merge_next = False
            return
        if merge_prev:
            raise _Error("a leading `;` continues the previous instruction, but there is none", columns[0])
        self._check_size(len(self.records) + 1)
        self.records.append(_Record(values, columns, self.where, tuple(self.expansion)))
        self.merge_next = False

    def _check_size(self, instructions: int) -> None:
        if instructions > MAX_INSTRUCTIONS:
            raise _Error(f"the program exceeds {MAX_INSTRUCTIONS:,} instructions ({instructions:,}); "
                         "the code must fit in GPU memory")

    def _expand_macro(self, slot: tuple, scope: _Scope) -> None:
        name, suffixes, operands, column = slot
        params, body, definition = self.macros[name]
        if suffixes:
            raise _Error(f"macro {name} takes no suffix", column)
        if len(operands) > len(params):
            raise _Error(f"macro {name} takes {len(params)} arguments, not {len(operands)}", column)
        bound: dict[str, object] = {}
        for param, ast in zip(params, operands, strict=False):
            self._bind(param)
            bound[param] = _Thunk(ast, scope)
        for param in params[len(operands):]:
            raise _Error(f"macro {name} is missing argument {param}", column)
        caller = self.where
        self.expansion.append((name, caller))
        try:
            self.run(body, _Scope(bound))
        except _Error as exc:
            if exc.where is None:
                exc.where, exc.expansion = self.where, tuple(self.expansion)
            raise
        finally:
            self.expansion.pop()
        self.where = caller

    def _slot(self, slot: tuple, scope: _Scope, final: bool, pc: int):
        """Evaluate one slot into an AluOp, a Branch, ("signal", name) or ("read", value)."""
        name, suffixes, operands, column = slot
        kind, op, unit, cond, setf = _slot_header(name, suffixes, column)
        if kind == "signal":
            if operands:
                raise _Error(f"signal {name} takes no operand", column)
            return ("signal", op)
        values = [self.evaluate(ast, scope, final, pc) for ast in operands]
        if kind == "read":
            if len(values) != 1:
                raise _Error("read takes one operand", column)
            return ("read", values[0])
        if kind == "branch":
            return self._branch(op == "brr", suffixes, values, column)
        dst = None
        srcs: tuple = ()
        if values:
            dst, srcs = values[0], tuple(values[1:])
            if not isinstance(dst, Reg):
                raise _Error(f"the destination of {name} must be a register, not {describe(dst)}", operands[0][-1])
            if dst.rotate or (dst.unpack and not dst.pack):
                raise _Error("a destination takes a pack suffix, not unpack or rotation", operands[0][-1])
            if dst.unpack:
                dst = replace(dst, unpack="")
            packed = [i for i, s in enumerate(srcs) if isinstance(s, Reg) and s.pack]
            for index in packed:
                if not srcs[index].unpack:
                    raise _Error(f".{srcs[index].pack} is a pack mode: it applies to a destination",
                                 operands[index + 1][-1])
            if packed:
                srcs = tuple(replace(s, pack="") if isinstance(s, Reg) else s for s in srcs)
        return AluOp(op, dst=dst, srcs=srcs, cond=cond, setf=setf, unit=unit)

    @staticmethod
    def _apply_suffixes(value: object, suffixes: tuple[str, ...], column: int) -> object:
        """Record a `.name` suffix as both a pack (if it names one) and an unpack (if it names one):
        the operand's position (destination or source) decides which applies (see `_slot`)."""
        if not suffixes:
            return value
        if not isinstance(value, Reg):
            raise _Error(f"suffix .{suffixes[0]} applies to a register, not {describe(value)}", column)
        for suffix in suffixes:
            s = suffix.lower()
            pack = s if s in isa.PACK_A_CODES or s in isa.PACK_MUL_CODES or s in isa.PACK_ALIASES else ""
            unpack = s if s in isa.UNPACK_CODES or s in isa.UNPACK_ALIASES else ""
            if not pack and not unpack:
                raise _Error(f"unknown pack/unpack mode .{suffix}", column)
            value = replace(value, pack=pack, unpack=unpack)
        return value

    def _branch(self, relative: bool, suffixes: list[str], values: list, column: int) -> tuple:
        cond = ""
        for suffix in suffixes:
            s = suffix.lower()
            if s in isa.BRANCH_CONDITION_CODES and s:
                cond = s
            elif s != "setf":
                raise _Error(f"unknown branch condition .{suffix} (.allz .allnz .anyz .anynz .alln .allnn .anyn "
                             ".anynn .allc .allcc .anyc .anycc)", column)
        if not values:
            raise _Error("a branch needs a target", column)
        target = values[-1]
        rest = values[:-1]
        reg = None
        if isinstance(target, Reg):
            reg, target = target, 0
        elif rest and isinstance(rest[-1], Reg) and rest[-1].physical_file() == "a" and len(rest) >= 2:
            reg = rest.pop()
        if not isinstance(target, (int, Label)):
            raise _Error(f"a branch target is a label, an offset or a register, not {describe(target)}", column)
        if not rest:
            raise _Error("a branch needs a link destination first (write - for none)", column)
        if len(rest) > 2 or not all(isinstance(r, Reg) for r in rest):
            raise _Error("a branch takes one or two link registers, then [register,] target", column)
        return Branch(relative=relative, target=target, reg=reg, links=tuple(rest), cond=cond)

    # ---- second pass ----------------------------------------------------------------------------

    def place(self, index: int) -> Place:
        """Where instruction `index` was written: its line and the column of its first slot."""
        record = self.records[index]
        return Place(record.where.filename, record.where.lineno, record.columns[0] if record.columns else 1)

    def finish(self) -> tuple[list[int], list[_SourceLine]]:
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
                raise _Error(str(exc), record.columns[slot] if record.columns else 1, record.where,
                             record.expansion) from None
            sources.append(record.where)
            if id(record) in self.shared:           # address-free (_repeats): the same word everywhere
                encoded[id(record)] = words[-1]
        return words, sources

    @staticmethod
    def _place(line: Line, value: object, column: int) -> None:
        if isinstance(value, Line):
            if line.ops or line.raw is not None:
                raise _Error("a .long word cannot be merged with another instruction", column)
            line.raw = value.raw
        elif isinstance(value, AluOp):
            line.ops.append(value)
        elif isinstance(value, Branch):
            if line.branch is not None:
                raise _Error("one branch per instruction", column)
            line.branch = value
        elif value[0] == "signal":
            if line.signal is not None:
                raise _Error("one signal per instruction", column)
            line.signal = value[1]
        else:
            line.reads.append(value[1])




def _address_free(record: _Record) -> bool:
    """Whether a record's word is the same at any address: no branch, nothing deferred."""
    return not any(isinstance(v, Branch) or (isinstance(v, tuple) and v[0] == "deferred") for v in record.slots)


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
            raise _Error(f"signal {name} takes no suffix", column)
        return "signal", lname, None, None, False
    if lname == "read":
        if suffixes:
            raise _Error("read takes no suffix", column)
        return "read", lname, None, None, False
    if lname in ("bra", "brr"):
        return "branch", lname, None, None, False
    unit = None
    if lname[:1] in UNIT_PREFIXES and lname[1:] in ("mov", "nop"):
        unit, lname = UNIT_PREFIXES[lname[0]], lname[1:]
    if not (lname in isa.ADD_OP_CODES or lname in isa.MUL_OP_CODES or lname == "mov" or lname in IMMEDIATE_OPS):
        raise _Error(f"unknown instruction or macro {name}", column)
    cond = None
    setf = False
    for suffix in suffixes:
        s = suffix.lower()
        if s == "setf":
            setf = True
        elif s in isa.CONDITION_CODES or s == "always":
            if cond is not None:
                raise _Error(f"{name} has two conditions", column)
            cond = s
        else:
            raise _Error(f"unknown suffix .{suffix} (conditions: .ifz .ifnz .ifn .ifnn .ifc .ifcc .never; "
                         "flags: .setf)", column)
    return "alu", lname, unit, cond, setf


def clear_caches() -> None:
    """Forget parsed lines and remembered encodings/decodings (benchmarks time cold runs)."""
    parse_line.cache_clear()
    _slot_header.cache_clear()
    _names_in.cache_clear()
    slots.clear_caches()


def read_source(path: str | os.PathLike) -> list[_SourceLine]:
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AssembleError(f"cannot read {name}: {exc.strerror}", name, 0, 0) from None
    return split_lines(text, name)


def split_lines(text: str, filename: str) -> list[_SourceLine]:
    # /* */ comments are blanked keeping line structure, so positions stay right.
    if "/*" in text:
        text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return [_SourceLine(t, filename, n) for n, t in enumerate(text.split("\n"), 1)]


def _define_value(name: str, value: object) -> object:
    """A pre-set symbol (`-D NAME=VALUE`): numbers and registers as they are, text as an expression."""
    if not isinstance(value, str):
        return value
    try:
        _, statement = parse_line(f".set {name}, {value}")
        return _Assembler({}, []).evaluate(statement[2][1], _Scope({}))
    except (ParseFailure, _Error) as exc:
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
        asm.run(lines, _Scope({}))
        if asm.merge_next:
            raise _Error("a trailing `;` continues into the next instruction, but there is none")
        words, sources = asm.finish()
        exported = {}
        for name, where, column in asm.globals:
            asm.where = where
            if name not in asm.labels:
                raise _Error(f".global names an undefined label {name}", column)
            exported[name] = asm.labels[name]
    except _Error as exc:
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
