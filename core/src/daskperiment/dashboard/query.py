"""The runs table's filter language, parsed safely (a tokenizer and a recursive-descent
parser; nothing is ever passed to ``eval``) and evaluated on whole columns at once.

Grammar (keywords are case-insensitive)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand [("==" | "=" | "!=" | "<" | "<=" | ">" | ">=") operand]
    operand    := NUMBER | 'text' | "text" | true | false | none | NAME | `any name` | "(" expr ")"

A bare name is true where the value is truthy, so ``lr > 0.01 and Success`` and
``status == "failed" or not Success`` work. Names are column names (parameters,
``Result``, ``Status``, ``val/loss (best)`` …), matched exactly, else ignoring case;
names with spaces or other characters go in backticks. Comparing values of
different types (a number with a text) is simply false for that row.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, cast

import numpy as np
import pandas as pd

__all__ = ["FilterError", "apply_filter", "evaluate", "parse"]


class FilterError(ValueError):
    """A filter that cannot be parsed or names an unknown column; the message says where."""


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<quoted>`[^`]*`)
  | (?P<op>==|!=|<=|>=|<|>|=)
  | (?P<paren>[()])
  | (?P<name>[^\W\d][\w.]*)
""", re.VERBOSE)

_KEYWORDS = {"and", "or", "not", "true", "false", "none", "null"}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "=": operator.eq, "!=": operator.ne,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Logical:
    op: str  # "and" | "or"
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


Node = Name | Literal | Compare | Logical | Not


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise FilterError(f"Filter: unexpected {text[position]!r} at position {position + 1} of {text!r}; "
                              "put names with spaces or symbols in `backticks` and text in quotes.")
        kind = match.lastgroup or ""
        if kind != "space":
            value = match.group()
            if kind == "name" and value.lower() in _KEYWORDS:
                kind = value.lower()
            tokens.append((kind, value, position))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str, int]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, expected: str) -> FilterError:
        if self.i < len(self.tokens):
            _, value, position = self.tokens[self.i]
            where = f"{value!r} at position {position + 1}"
        else:
            where = "the end"
        return FilterError(f"Filter {self.text!r}: expected {expected}, found {where}. "
                           "Example: lr > 0.01 and Success")

    def parse(self) -> Node:
        if not self.tokens:
            raise FilterError("Filter is empty.")
        node = self.expr()
        if self.i != len(self.tokens):
            raise self.fail("'and', 'or' or the end")
        return node

    def expr(self) -> Node:
        node = self.and_expr()
        while self.peek() == "or":
            self.take()
            node = Logical("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.peek() == "and":
            self.take()
            node = Logical("and", node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self.peek() == "not":
            self.take()
            return Not(self.not_expr())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        if self.peek() == "op":
            op = self.take()[1]
            return Compare(op, left, self.operand())
        return left

    def operand(self) -> Node:
        kind = self.peek()
        if kind is None:
            raise self.fail("a name, a number or a quoted text")
        if kind == "paren" and self.tokens[self.i][1] == "(":
            self.take()
            node = self.expr()
            if self.peek() != "paren" or self.tokens[self.i][1] != ")":
                raise self.fail("')'")
            self.take()
            return node
        if kind == "number":
            text = self.take()[1]
            return Literal(float(text) if any(c in text for c in ".eE") else int(text))
        if kind == "string":
            raw = self.take()[1][1:-1]
            return Literal(re.sub(r"\\(.)", r"\1", raw))
        if kind in ("true", "false"):
            return Literal(self.take()[0] == "true")
        if kind in ("none", "null"):
            self.take()
            return Literal(None)
        if kind == "name":
            return Name(self.take()[1])
        if kind == "quoted":
            return Name(self.take()[1][1:-1])
        raise self.fail("a name, a number or a quoted text")


def parse(text: str) -> Node:
    """The syntax tree of ``text``; :class:`FilterError` names the position of a mistake."""
    return _Parser(text).parse()


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    folded = {str(c).lower(): c for c in frame.columns}
    if name.lower() in folded:
        return frame[folded[name.lower()]]
    raise FilterError(f"Filter: no column {name!r}. Columns: {', '.join(map(str, frame.columns))} "
                      "(names with spaces or symbols go in `backticks`).")


def _truthy(value: Any, index: pd.Index) -> pd.Series:
    if not isinstance(value, pd.Series):
        return pd.Series(bool(value), index=index)
    if value.dtype == bool:
        return value
    if isinstance(value.dtype, pd.BooleanDtype):
        return value.fillna(False).astype(bool)
    if value.dtype.kind in "if":
        return value.fillna(0).astype(bool)
    return value.map(lambda v: not _missing(v) and bool(v)).astype(bool)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _safe(op: Callable[[Any, Any], Any], a: Any, b: Any) -> bool:
    """One comparison: missing equals only missing (``x == none``), other types never compare."""
    if _missing(a) or _missing(b):
        if op is operator.eq:
            return _missing(a) and _missing(b)
        return op is operator.ne and not (_missing(a) and _missing(b))
    try:
        return bool(op(a, b))
    except TypeError:
        return op is operator.ne


def _compare(op: Callable[[Any, Any], Any], left: Any, right: Any, index: pd.Index) -> pd.Series:
    series = [v for v in (left, right) if isinstance(v, pd.Series)]
    numeric = all(s.dtype.kind in "ifb" for s in series) and all(
        isinstance(v, (int, float, bool, np.number)) for v in (left, right) if not isinstance(v, pd.Series))
    if numeric:
        if not series:
            return pd.Series(bool(op(left, right)), index=index)
        return pd.Series(np.asarray(op(left, right), dtype=bool), index=index)
    lefts = left if isinstance(left, pd.Series) else [left] * len(index)
    rights = right if isinstance(right, pd.Series) else [right] * len(index)
    return pd.Series([_safe(op, a, b) for a, b in zip(lefts, rights)], index=index, dtype=bool)


def evaluate(node: Node, frame: pd.DataFrame) -> pd.Series:
    """A boolean mask over ``frame``'s rows."""
    def value(n: Node) -> Any:
        if isinstance(n, Name):
            column = _column(frame, n.name)
            if isinstance(column.dtype, pd.BooleanDtype):
                # cast: pandas-stubs before 3.0 does not accept None here, which pandas does
                return column.astype(object).where(column.notna(), cast(Any, None))
            return column
        if isinstance(n, Literal):
            return n.value
        return mask(n)

    def mask(n: Node) -> pd.Series:
        if isinstance(n, Logical):
            left, right = mask(n.left), mask(n.right)
            return (left & right) if n.op == "and" else (left | right)
        if isinstance(n, Not):
            return ~mask(n.operand)
        if isinstance(n, Compare):
            return _compare(_COMPARE[n.op], value(n.left), value(n.right), frame.index)
        return _truthy(value(n), frame.index)

    return mask(node)


def apply_filter(frame: pd.DataFrame, text: str | None) -> pd.DataFrame:
    """The rows of ``frame`` matching ``text`` (all of them for an empty filter)."""
    if not text or not text.strip():
        return frame
    return frame[evaluate(parse(text), frame).to_numpy()]
