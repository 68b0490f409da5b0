"""What the assembler produces and how it reports: Program, AssembleError, Place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

SHOWN = 160                 # characters of a source line (and of a message) an error shows


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
