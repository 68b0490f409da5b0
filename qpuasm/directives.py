"""The assembler's preprocessor: source lines, `.if`/`.else`, `.macro`, `.rep`, `.include`, `.set`,
`.global`, `.assert`, `.long`, and macro expansion.

Directives.run walks a list of source lines. Block directives (`.if`, `.macro`, `.rep`) are found
by a pattern before a line is parsed, so that an inactive branch or a macro body is never parsed
before it is used; every other line is parsed and handed to `statement`, which defines its labels
and runs its directive or hands its instruction to the assembler (assembler.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from .expressions import MISSING, Evaluator, LineError, Scope, SourceLine, Thunk, truth
from .line import Branch, Line
from .parser import ParseFailure, parse_line
from .program import AssembleError

BLOCK_DIRECTIVE = re.compile(r"^\s*(?:::?[A-Za-z0-9_]+\s+)*\.([A-Za-z_]+)\b")


def read_source(path: str | os.PathLike) -> list[SourceLine]:
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise AssembleError(f"cannot read {name}: {exc.strerror}", name, 0, 0) from None
    return split_lines(text, name)


def split_lines(text: str, filename: str) -> list[SourceLine]:
    # /* */ comments are blanked keeping line structure, so positions stay right.
    if "/*" in text:
        text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return [SourceLine(t, filename, n) for n, t in enumerate(text.split("\n"), 1)]



def _address_free(record) -> bool:
    """Whether a record's word is the same at any address: no branch, nothing deferred."""
    return not any(isinstance(v, Branch) or (isinstance(v, tuple) and v[0] == "deferred") for v in record.slots)


class Directives(Evaluator):
    """Lines and directives. The assembler (assembler.py) provides the records emitted so far,
    `merge_next` (a trailing `;` is open), `instruction`, `emit` and `check_size`."""

    records: list
    shared: set[int]
    merge_next: bool

    def __init__(self, defines: dict[str, object], include_path: Iterable[str]):
        super().__init__(defines)
        self.macros: dict[str, tuple[list[str], list[SourceLine], SourceLine]] = {}
        self.include_path = [Path(p) for p in include_path]
        self.expansion: list[tuple[str, SourceLine]] = []    # (macro, call site) of open expansions
        self.depth = 0

    def instruction(self, statement: tuple, scope: Scope) -> None:
        raise NotImplementedError

    def emit(self, values: list, columns: list[int], merge_prev: bool) -> None:
        raise NotImplementedError

    def check_size(self, instructions: int) -> None:
        raise NotImplementedError

    def run(self, lines: list[SourceLine], scope: Scope) -> None:
        self.depth += 1
        if self.depth > 64:
            raise LineError("macros, repetitions or includes nested more than 64 deep")
        try:
            self._run(lines, scope)
        finally:
            self.depth -= 1

    def _run(self, lines: list[SourceLine], scope: Scope) -> None:
        conditions: list[list[bool]] = []     # per open .if: [this branch active, a branch was taken]
        i = 0
        while i < len(lines):
            line = lines[i]
            self.where = line
            i += 1
            active = all(c[0] for c in conditions)
            block = BLOCK_DIRECTIVE.match(line.text)
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
            raise LineError(".if without .endif")

    def _block_end(self, lines: list[SourceLine], start: int, opener: str, closer: str) -> int:
        depth = 0
        for j in range(start, len(lines)):
            match = BLOCK_DIRECTIVE.match(lines[j].text)
            word = match.group(1).lower() if match else None
            if word == opener:
                depth += 1
            elif word == closer:
                depth -= 1
                if depth == 0:
                    return j
        raise LineError(f".{opener} without .{closer}")

    def _directive_args(self, line: SourceLine) -> tuple[str, list, int]:
        labels, statement = self._parse_line(line)
        if labels:
            raise LineError("a label cannot stand before a block directive", labels[0][2])
        assert statement is not None and statement[0] == "dir"
        return statement[1], statement[2], statement[3]

    def _conditional(self, name: str, conditions: list[list[bool]], line: SourceLine, scope: Scope) -> None:
        _, args, column = self._directive_args(line)
        if name in ("if", "ifset", "ifnset"):
            value = self._condition(name, args, column, scope)
            conditions.append([value, value])
        elif not conditions:
            raise LineError(f".{name} without .if", column)
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

    def _condition(self, name: str, args: list, column: int, scope: Scope) -> bool:
        if len(args) != 1:
            raise LineError(f".{name} takes one argument", column)
        if name in ("ifset", "ifnset"):
            if args[0][0] != "name":
                raise LineError(f".{name} takes a symbol name", column)
            defined = args[0][1] in self.symbols or self._in_scope(args[0][1], scope)
            return defined if name == "ifset" else not defined
        return truth(self.evaluate(args[0], scope), args[0][-1])

    @staticmethod
    def _in_scope(name: str, scope: Scope) -> bool:
        return scope.lookup(name) is not MISSING

    def _define_macro(self, line: SourceLine, body: list[SourceLine]) -> None:
        _, args, column = self._directive_args(line)
        if not args or any(a[0] != "name" for a in args):
            raise LineError(".macro takes a name and parameter names", column)
        self.macros[args[0][1]] = ([a[1] for a in args[1:]], body, line)

    def _expand_macro(self, slot: tuple, scope: Scope) -> None:
        name, suffixes, operands, column = slot
        params, body, definition = self.macros[name]
        if suffixes:
            raise LineError(f"macro {name} takes no suffix", column)
        if len(operands) > len(params):
            raise LineError(f"macro {name} takes {len(params)} arguments, not {len(operands)}", column)
        bound: dict[str, object] = {}
        for param, ast in zip(params, operands, strict=False):
            self.bind(param)
            bound[param] = Thunk(ast, scope)
        for param in params[len(operands):]:
            raise LineError(f"macro {name} is missing argument {param}", column)
        caller = self.where
        self.expansion.append((name, caller))
        try:
            self.run(body, Scope(bound))
        except LineError as exc:
            if exc.where is None:
                exc.where, exc.expansion = self.where, tuple(self.expansion)
            raise
        finally:
            self.expansion.pop()
        self.where = caller

    def _repeat(self, line: SourceLine, body: list[SourceLine], scope: Scope) -> None:
        _, args, column = self._directive_args(line)
        if len(args) == 1:
            variable, count_ast = None, args[0]
        elif len(args) == 2 and args[0][0] == "name":
            variable, count_ast = args[0][1], args[1]
        else:
            raise LineError(".rep takes [variable,] count", column)
        count = self.evaluate(count_ast, scope)
        if not isinstance(count, int) or count < 0 or count > 1 << 20:
            raise LineError(f".rep count must be an integer in 0..{1 << 20}, not {count!r}", count_ast[-1])
        if variable:
            self.bind(variable)
        for n in range(count):
            watched = n == 1 and count > 2         # the second pass decides whether the rest are copies
            before = self._state() if watched else None
            start = len(self.records)
            self.run(body, Scope({variable: n}, scope) if variable else scope)
            if watched and self._repeats(start, before):
                # The second pass changed nothing and emitted what the first did: the rest are copies.
                block = self.records[start:]
                self.where = line
                self.check_size(len(self.records) + len(block) * (count - 2))
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

    def _parse_line(self, line: SourceLine):
        try:
            return parse_line(line.text)
        except ParseFailure as exc:
            raise LineError(str(exc), exc.column) from None

    def statement(self, line: SourceLine, scope: Scope) -> None:
        labels, statement = self._parse_line(line)
        for kind, name, column in labels:
            if self.merge_next:
                raise LineError("a label cannot stand between two merged lines (trailing `;`)", column)
            self.define_label(name, column, kind == "global_label")
        if statement is None:
            return
        if statement[0] == "dir":
            self.directive(statement, scope)
        else:
            self.instruction(statement, scope)

    def directive(self, statement: tuple, scope: Scope) -> None:
        _, name, args, column = statement
        if name == "set":
            if len(args) != 2 or args[0][0] != "name":
                raise LineError(".set takes a name and a value", column)
            self.bind(args[0][1])
            self.symbols[args[0][1]] = self.evaluate(args[1], scope)
        elif name == "unset":
            for arg in args:
                self.symbols.pop(arg[1], None)
        elif name == "include":
            self._include(args, column)
        elif name in ("global", "globl"):
            for arg in args:
                if arg[0] != "name":
                    raise LineError(".global takes label names", arg[-1])
                self.globals.append((arg[1], self.where, arg[-1]))
        elif name == "assert":
            for arg in args:
                if not truth(self.evaluate(arg, scope), arg[-1]):
                    raise LineError("assertion failed", arg[-1])
        elif name == "long":
            self._raw_words(args, scope, column)
        elif name in ("endm", "endr"):
            raise LineError(f".{name} without .{'macro' if name == 'endm' else 'rep'}", column)
        else:
            raise LineError(f"unknown directive .{name}", column)

    def _raw_words(self, args: list, scope: Scope, column: int) -> None:
        values = [self.evaluate(a, scope) for a in args]
        if len(values) % 2 or not all(isinstance(v, int) and 0 <= v < 1 << 32 for v in values):
            raise LineError(".long takes 32-bit words in (low, high) pairs: QPU instructions are 64-bit", column)
        for low, high in zip(values[::2], values[1::2], strict=True):
            self.emit([Line(raw=high << 32 | low)], [column], merge_prev=False)

    def _include(self, args: list, column: int) -> None:
        if len(args) != 1 or args[0][0] not in ("str", "path"):
            raise LineError('.include takes "file" or <file>', column)
        kind, name, _ = args[0]
        here = Path(self.where.filename).parent if self.where.filename != "<input>" else Path(".")
        candidates = ([here / name] if kind == "str" else []) + [p / name for p in self.include_path]
        for path in candidates:
            if path.is_file():
                self.run(read_source(path), Scope({}))
                return
        raise LineError(f"cannot find include file {name}", args[0][-1])
