"""Expressions of the assembly language: values, scopes, operators, functions and labels.

`Evaluator.evaluate` turns an operand's AST (parser.py) into a value: an int or float, a register
(`operands.Reg`, with its suffixes, offsets and rotation), a label, a per-element vector. Names
resolve through the macro and `.rep` scopes, then the `.set` symbols, then the register names; a
label not defined yet raises ForwardReference, and the slot is evaluated again in the second pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from . import isa
from .builtins import BUILTINS, BuiltinError
from .line import describe
from .operands import REGISTERS, Label, PerElement, Reg


class LineError(Exception):
    """An error at a column of a line; `where` and `expansion` (the macro calls that led there) are
    filled in on the way out when the error happened inside a macro or in the second pass."""

    def __init__(self, message: str, column: int = 1, where: SourceLine | None = None,
                 expansion: tuple = ()):
        super().__init__(message)
        self.column = column
        self.where = where
        self.expansion = expansion


class ForwardReference(Exception):
    """A label that is not defined yet: the slot is evaluated again after the first pass."""


@dataclass
class Thunk:
    """A macro argument: evaluated where it is used (so `r:label` is relative to that place)."""

    ast: tuple
    scope: Scope


MISSING = object()


@dataclass
class Scope:
    values: dict[str, object]
    parent: Scope | None = None

    def lookup(self, name: str) -> object:
        """The value bound to `name` in this scope or an enclosing one, or MISSING."""
        scope: Scope | None = self
        while scope is not None:
            value = scope.values.get(name, MISSING)
            if value is not MISSING:
                return value
            scope = scope.parent
        return MISSING

    def flatten(self) -> Scope:
        chain = []
        scope: Scope | None = self
        while scope is not None:
            chain.append(scope.values)
            scope = scope.parent
        merged: dict[str, object] = {}
        for values in reversed(chain):
            merged.update(values)
        return Scope(merged)


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

@dataclass
class SourceLine:
    text: str
    filename: str
    lineno: int



class Evaluator:
    """The names an expression can read (symbols, labels) and the evaluation of operands. The
    assembler (assembler.py) adds the instructions; `pc` is the address of the next one."""

    def __init__(self, defines: dict[str, object]):
        self.symbols: dict[str, object] = dict(defines)
        self.labels: dict[str, int] = {}
        self.local_labels: dict[str, list[int]] = {}
        self.globals: list[tuple[str, SourceLine, int]] = []
        self.where = SourceLine("", "<input>", 0)
        # Slots whose value depends on nothing but their text (registers, numbers, built-ins) are
        # evaluated once: `impure` records a lookup of a symbol, macro argument or label.
        self.pure_slots: dict[tuple, object] = {}
        self.impure = False
        self.rebound_registers: set[str] = set()     # register names ever bound by .set/.macro/.rep
        self.label_lookups = 0      # counts label lookups, which depend on the address (see Directives._repeat)

    @property
    def pc(self) -> int:
        raise NotImplementedError

    def define_label(self, name: str, column: int, exported: bool) -> None:
        if name.isdigit():
            self.local_labels.setdefault(name, []).append(self.pc)
            return
        if name in self.labels:
            raise LineError(f"label {name} is already defined", column)
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
                    raise ForwardReference(name)
            raise LineError(f"local label {name[:-1]} is not defined {'before' if name[-1] == 'b' else 'after'} "
                         "this point", column)
        if name in self.labels:
            return self.labels[name]
        if not final:
            raise ForwardReference(name)
        raise LineError(f"undefined label :{name}", column)

    def evaluate(self, node: tuple, scope: Scope, final: bool = False, pc: int | None = None) -> object:
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
                    value = int(truth(value, column) and truth(self.evaluate(b, scope, final, pc), column))
                elif op == "||":
                    value = int(truth(value, column) or truth(self.evaluate(b, scope, final, pc), column))
                else:
                    value = binary(op, value, self.evaluate(b, scope, final, pc), column)
            return value
        if kind == "un":
            _, op, a, column = node
            value = self.evaluate(a, scope, final, pc)
            return unary(op, value, column)
        if kind == "tern":
            _, cond, a, b, column = node
            chosen = a if truth(self.evaluate(cond, scope, final, pc), column) else b
            return self.evaluate(chosen, scope, final, pc)
        if kind == "call":
            _, name, args, column = node
            values = [self.evaluate(a, scope, final, pc) for a in args]
            return call_function(name, values, column)
        if kind == "vec":
            values = [self.evaluate(a, scope, final, pc) for a in node[1]]
            if not all(isinstance(v, int) for v in values):
                raise LineError("a per-element vector holds integers", node[2])
            return PerElement(tuple(values))
        if kind == "suffixed":            # a macro argument written with its own suffix
            return apply_suffixes(self.evaluate(node[1], scope, final, pc), node[2], node[1][-1])
        if kind in ("label_ref", "rel_label_ref"):
            self.impure = True
        if kind == "label_ref":
            return Label(node[1], self.label_address(node[1], node[2], final, pc))
        if kind == "rel_label_ref":
            return self.label_address(node[1], node[2], final, pc) - (pc + isa.BRANCH_LINK_OFFSET)
        raise LineError(f"{kind} is not allowed here", node[-1])

    def _lookup(self, name: str, column: int, scope: Scope, final: bool, pc: int) -> object:
        value = scope.lookup(name)
        if value is MISSING:
            value = self.symbols.get(name, MISSING)
            if value is MISSING:
                value = REGISTERS.get(name)
                if value is None:
                    raise LineError(f"undefined symbol {name}", column)
                return value
        self.impure = True
        if isinstance(value, Thunk):
            return self.evaluate(value.ast, value.scope, final, pc)
        return value

    def bind(self, name: str) -> None:
        """A name gets a value: if it is also a register name, memoized slots may be stale."""
        if name in REGISTERS and name not in self.rebound_registers:
            self.rebound_registers.add(name)
            self.pure_slots.clear()


def truth(value: object, column: int) -> bool:
    if isinstance(value, (int, float)):
        return bool(value)
    raise LineError(f"{describe(value)} is not a condition", column)


def binary(op: str, a: object, b: object, column: int) -> object:
    if isinstance(a, Reg):
        return _register_op(op, a, b, column)
    if isinstance(a, Label) or isinstance(b, Label):
        return _label_op(op, a, b, column)
    if op in _COMPARE and isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return int(_COMPARE[op](a, b))
    if isinstance(a, int) and isinstance(b, int):
        if op in ("/", "%") and b == 0:
            raise LineError("division by zero", column)
        if op in ("<<", ">>") and b < 0:
            raise LineError("negative shift count", column)
        if op == "<<" and b > 64 or op == "**" and abs(b) > 64:
            raise LineError("constant too large", column)
        return _INT_OPS[op](a, b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and op in _FLOAT_OPS:
        try:
            return float(_FLOAT_OPS[op](float(a), float(b)))
        except (ZeroDivisionError, OverflowError):
            raise LineError("invalid floating-point operation", column) from None
    raise LineError(f"operator {op} cannot combine {describe(a)} and {describe(b)}", column)


def _register_op(op: str, reg: Reg, b: object, column: int) -> Reg:
    if op in ("+", "-") and isinstance(b, int):
        try:
            return reg.offset(b if op == "+" else -b)
        except ValueError as exc:
            raise LineError(str(exc), column) from None
    if op in ("<<", ">>"):
        try:
            return reg.rotated(op, b)
        except ValueError as exc:
            raise LineError(str(exc), column) from None
    raise LineError(f"operator {op} cannot be applied to register {reg.name}", column)


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
    raise LineError(f"operator {op} cannot combine {describe(a)} and {describe(b)}", column)


def unary(op: str, value: object, column: int) -> object:
    if op == "-" and isinstance(value, (int, float)):
        return -value
    if op == "+" and isinstance(value, (int, float)):
        return value
    if op == "~" and isinstance(value, int):
        return ~value
    if op == "!" and isinstance(value, (int, float)):
        return int(not value)
    raise LineError(f"operator {op} cannot be applied to {describe(value)}", column)


def call_function(name: str, args: list[object], column: int) -> object:
    function = BUILTINS.get(name) or _MATH.get(name)
    if function is None:
        raise LineError(f"unknown function {name}", column)
    try:
        return function(*args)
    except BuiltinError as exc:
        raise LineError(f"{name}: {exc}", column) from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise LineError(f"{name}: {exc}", column) from None


def apply_suffixes(value: object, suffixes: tuple[str, ...], column: int) -> object:
    """Record a `.name` suffix as both a pack (if it names one) and an unpack (if it names one):
    the operand's position (destination or source) decides which applies (see `_slot`)."""
    if not suffixes:
        return value
    if not isinstance(value, Reg):
        raise LineError(f"suffix .{suffixes[0]} applies to a register, not {describe(value)}", column)
    for suffix in suffixes:
        s = suffix.lower()
        pack = s if s in isa.PACK_A_CODES or s in isa.PACK_MUL_CODES or s in isa.PACK_ALIASES else ""
        unpack = s if s in isa.UNPACK_CODES or s in isa.UNPACK_ALIASES else ""
        if not pack and not unpack:
            raise LineError(f"unknown pack/unpack mode .{suffix}", column)
        value = replace(value, pack=pack, unpack=unpack)
    return value
