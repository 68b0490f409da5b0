"""Source line -> AST: the Lark grammar (grammar.lark, LALR) with a transformer that runs inside
the parser and builds small tuples. Each distinct line is parsed once and the AST is shared.

Expression nodes: ("int", value, col), ("float", value, col), ("name", text, col),
("bin", op, a, b, col), ("un", op, a, col), ("tern", cond, a, b, col), ("call", name, args, col),
("vec", items, col), ("label_ref", name, col), ("rel_label_ref", name, col),
("suffixed", node, suffixes, col). A line is (labels, statement) with statement
("dir", name, args, col) or ("ins", slots, leading ;, trailing ;); a slot is
(mnemonic, suffixes, operands, col). All are tuples, so they can key caches; integers and floats
have their own node kinds because Python treats 1 == 1.0 as the same dictionary key.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

COMMENT_PATTERN = re.compile(r"(#|//).*")


@v_args(inline=True)
class _ToAst(Transformer):
    """Lark tree -> tuples. Expression nodes carry the column of their first token."""

    def start(self, *items):
        labels = [i for i in items if isinstance(i, tuple) and i[0] in ("label", "global_label")]
        rest = [i for i in items if not (isinstance(i, tuple) and i[0] in ("label", "global_label"))]
        return labels, (rest[0] if rest else None)

    def label(self, tok):
        return ("label", tok[1:], tok.column)

    def global_label(self, tok):
        return ("global_label", tok[2:], tok.column)

    def directive(self, name, args):
        return ("dir", name[1:].lower(), args or [], name.column)

    def dir_args(self, *args):
        return list(args)

    def string(self, tok):
        return ("str", tok[1:-1], tok.column)

    def angle_path(self, tok):
        return ("path", tok[1:-1], tok.column)

    def instruction(self, *items):
        slots = [i for i in items if not isinstance(i, Token)]
        lead = bool(items) and isinstance(items[0], Token)
        trail = len(items) > 1 and isinstance(items[-1], Token) or (not slots and bool(items))
        return ("ins", slots, lead, trail)

    def slot(self, name, *rest):
        operands = rest[-1] if rest and isinstance(rest[-1], tuple) else ()
        suffixes = [s[1:] for s in rest if isinstance(s, Token)]
        return (str(name), tuple(suffixes), operands, name.column)

    def operands(self, *ops):
        return tuple(ops)

    def operand(self, expr):
        return expr

    def suffixed(self, atom, suffix):
        if atom[0] == "suffixed":
            return ("suffixed", atom[1], atom[2] + (str(suffix)[1:],), atom[-1])
        return ("suffixed", atom, (str(suffix)[1:],), atom[-1])

    def int(self, tok):
        text = str(tok).lower()
        if len(text) > MAX_DIGITS:          # and Python would refuse to convert it
            raise ParseFailure(f"a number of {len(text)} digits (a QPU word holds 32 bits)", tok.column)
        value = int(text, 0) if text.startswith(("0x", "0b")) else int(text, 10)
        return ("int", value, tok.column)

    def float(self, tok):
        return ("float", float(tok), tok.column)

    def name(self, tok):
        return ("name", str(tok), tok.column)

    def call(self, name, *args):
        return ("call", str(name), tuple(a for a in args if a is not None), name.column)

    def vector(self, *items):
        return ("vec", tuple(items), items[0][-1] if items else 0)

    def label_ref(self, tok):
        return ("label_ref", tok[1:], tok.column)

    def rel_label_ref(self, tok):
        return ("rel_label_ref", tok[2:], tok.column)

    def no_register(self, tok):
        return ("name", "-", tok.column)

    def binary(self, *items):
        """Operands and operators in source order -> a tree by C precedence (precedence climbing)."""
        if len(items) > 2 * MAX_OPERATORS + 1:
            raise ParseFailure(f"an expression of {len(items) // 2} operators (at most {MAX_OPERATORS})",
                               items[1].column)
        return _climb(list(items), 0)[0]

    def unary(self, op, a):
        return ("un", str(op), a, op.column)

    def ternary(self, cond, a, b):
        return ("tern", cond, a, b, cond[-1])


# Bounds that keep every walk over an expression (evaluation, hashing its tuples) well inside the
# interpreter's stack, with a clear error instead of a crash.
MAX_OPERATORS = 4096
MAX_DIGITS = 100

# C operator precedence (higher binds tighter); ** is vc4asm's power operator, right-associative.
BINARY_PRECEDENCE = {
    "||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6, "<": 7, "<=": 7, ">": 7, ">=": 7,
    "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10, "**": 11,
}


def _climb(items: list, position: int, min_precedence: int = 1) -> tuple[tuple, int]:
    """Parse items[position:] (operand, op, operand, ...) into ("bin", op, a, b, col) nodes."""
    left = items[position]
    position += 1
    while position < len(items):
        token = items[position]
        op = str(token)
        precedence = BINARY_PRECEDENCE[op]
        if precedence < min_precedence:
            break
        next_min = precedence if op == "**" else precedence + 1
        right, position = _climb(items, position + 1, next_min)
        left = ("bin", op, left, right, token.column)
    return left, position


# The transformer runs inside the LALR parser: no parse tree is built, each reduction makes a tuple.
_PARSER = Lark.open("grammar.lark", rel_to=__file__, parser="lalr", maybe_placeholders=True,
                    transformer=_ToAst())


class ParseFailure(Exception):
    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.column = column


@lru_cache(maxsize=65536)
def parse_line(text: str):
    """Parse one line; the result (an AST of tuples) is shared by every occurrence of the text."""
    try:
        return _PARSER.parse(text)
    except UnexpectedInput as exc:
        message = _syntax_message(exc, text)
        if message == "unexpected end of line" or not exc.column or exc.column < 1:
            column = len(COMMENT_PATTERN.sub("", text).rstrip()) + 1
        else:
            column = exc.column
        raise ParseFailure(message, column) from None


def _syntax_message(exc: UnexpectedInput, text: str) -> str:
    if isinstance(exc, UnexpectedCharacters):
        return f"unexpected character {text[exc.pos_in_stream]!r}"
    if isinstance(exc, UnexpectedToken):
        if exc.token.type == "$END":
            return "unexpected end of line"
        return f"unexpected {exc.token.value!r}"
    if isinstance(exc, UnexpectedEOF):
        return "unexpected end of line"
    return "syntax error"
