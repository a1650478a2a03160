"""The safe condition language of ``when:`` and of filter transformations; never ``eval``.

Grammar, loosest binding first::

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") operand)?
    operand    := literal | list | reference | column | "(" condition ")"

* Literals: strings in single or double quotes (escapes as in references), integers,
  decimals with an optional exponent, negative numbers, ``true``, ``false``, ``null``;
  lists ``[1, 'a']`` whose items are operands.
* ``when`` mode: a bare name chain (``steps.a.output.n``, ``webhook.headers['x-id']``)
  is a reference, with the path syntax of :mod:`vecron.spec.references`.
* ``filter`` mode: a bare name (``amount``) is a column; a column whose name is not a
  plain name (spaces, dots, a reserved word) is written between backticks, as in
  pandas' ``query``: `first name` == 'Bob'. A dotted bare name (``a.b``) is an error,
  as it could mean either a column with a dot or a reference.
* Both modes: ``{{ reference }}`` is a reference, the same as the bare one in ``when``.
* Chained comparisons (``a < b < c``) are an error: write ``a < b and b < c``.
* No calls, arithmetic, attribute access (``.__class__``), variables or other Python:
  any of them is a ConditionSyntaxError pointing at the token.
"""

from __future__ import annotations

import keyword
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, TypeAlias, cast

from vecron.errors import ConditionEvaluationError, ConditionSyntaxError, ReferenceSyntaxError
from vecron.spec.references import (
    IDENT,
    Reference,
    found,
    quote_string,
    scan_reference,
    scan_string,
    skip_space,
    value_to_text,
)

Mode = Literal["when", "filter"]
CompareOp = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]
Scalar: TypeAlias = str | int | float | bool | None

_KEYWORDS = frozenset({"and", "or", "not", "in"})
_CONSTS: dict[str, Scalar] = {"true": True, "false": False, "null": None}
_PY_CONSTS = {"True": "true", "False": "false", "None": "null"}
# Python's own keywords read as bare names would be confusing, so they are refused.
_RESERVED = _KEYWORDS | _CONSTS.keys() | frozenset(keyword.kwlist)
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_OPS = ("==", "!=", "<=", ">=", "<", ">")
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_HINTS = {
    "=": "'=' is not a comparison; use '=='",
    "!": "use 'not' instead of '!'",
    "&": "use 'and' instead of '&&'",
    "|": "use 'or' instead of '||'",
    "$": "variables are not part of conditions; write variables.NAME",
    "`": "backticks name columns, which exist only in filter conditions",
    **dict.fromkeys("+-*/%", "arithmetic is not allowed"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Ref:
    """A reference into the Job Context."""

    reference: Reference


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """A column of the row being filtered (filter mode only)."""

    name: str


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Const:
    """A literal: string, number, boolean or null."""

    value: Scalar

    # 1, 1.0 and true are equal in Python but are different constants here.
    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Const)
            and type(self.value) is type(other.value)
            and self.value == other.value
        )

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))


@dataclass(frozen=True, slots=True, kw_only=True)
class ListExpr:
    """A list literal ``[a, b]``; items are any nodes."""

    items: tuple[Node, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Compare:
    """``left op right``."""

    op: CompareOp
    left: Node
    right: Node


@dataclass(frozen=True, slots=True, kw_only=True)
class Not:
    """``not operand``."""

    operand: Node


@dataclass(frozen=True, slots=True, kw_only=True)
class And:
    """``a and b and …`` (two or more operands, evaluated left to right)."""

    operands: tuple[Node, ...]

    def __post_init__(self) -> None:
        _check_operands(self.operands)


@dataclass(frozen=True, slots=True, kw_only=True)
class Or:
    """``a or b or …`` (two or more operands, evaluated left to right)."""

    operands: tuple[Node, ...]

    def __post_init__(self) -> None:
        _check_operands(self.operands)


def _check_operands(operands: tuple[Node, ...]) -> None:
    # One operand would print as itself and parse back as a different tree.
    if len(operands) < 2:
        raise ValueError(f"and/or need two or more operands, got {len(operands)}")


Node: TypeAlias = Ref | Column | Const | ListExpr | Compare | Not | And | Or


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """A parsed condition: its root node, the text it came from and the mode."""

    node: Node
    source: str
    mode: Mode = "when"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "op", "kw", "punct", "value" or "end"
    text: str
    start: int
    node: Node | None = None


class _Parser:
    def __init__(self, text: str, mode: Mode) -> None:
        self.text, self.mode = text, mode
        self.tok = self._lex(0)

    def error(self, message: str, offset: int) -> ConditionSyntaxError:
        return ConditionSyntaxError(message, offset=offset)

    def _from(self, e: ReferenceSyntaxError) -> ConditionSyntaxError:
        offset = e.offset or 0
        return self.error(f"{e.message} (at column {offset + 1})", offset)

    def unexpected(self, expected: str) -> ConditionSyntaxError:
        tok = self.tok
        what = "end of the condition" if tok.kind == "end" else repr(tok.text)
        return self.error(
            f"unexpected {what} at column {tok.start + 1}: expected {expected}", tok.start
        )

    def _lex(self, pos: int) -> _Token:
        text = self.text
        i = skip_space(text, pos)
        if i >= len(text):
            return _Token("end", "", i)
        c = text[i]
        for op in _OPS:
            if text.startswith(op, i):
                return _Token("op", op, i)
        if c in "()[],":
            return _Token("punct", c, i)
        try:
            if c in "'\"":
                value, end = scan_string(text, i)
                return _Token("value", text[i:end], i, Const(value=value))
            if c == "`" and self.mode == "filter":
                name, end = scan_string(text, i)
                return _Token("value", text[i:end], i, Column(name=name))
            if text.startswith("{{", i):
                ref, end = scan_reference(text, skip_space(text, i + 2))
                end = skip_space(text, end)
                if not text.startswith("}}", end):
                    raise self.error(
                        f"expected '}}}}' to close '{{{{' at column {i + 1}, "
                        f"found {found(text, end)}",
                        end,
                    )
                return _Token("value", text[i : end + 2], i, Ref(reference=ref))
        except ReferenceSyntaxError as e:
            raise self._from(e) from None
        if m := _NUMBER.match(text, i):
            if IDENT.match(text, m.end()):
                raise self.error(f"unexpected {found(text, i)} at column {i + 1}", i)
            number: int | float = float(m.group()) if m.group(1) or m.group(2) else int(m.group())
            return _Token("value", m.group(), i, Const(value=number))
        if m := IDENT.match(text, i):
            return self._name(m.group(), i)
        hint = _HINTS.get(c, "expected a value, a reference, a comparison, 'and', 'or' or 'not'")
        raise self.error(f"unexpected {c!r} at column {i + 1}: {hint}", i)

    def _name(self, word: str, i: int) -> _Token:
        if word in _KEYWORDS:
            return _Token("kw", word, i)
        if word in _CONSTS:
            return _Token("value", word, i, Const(value=_CONSTS[word]))
        if word in _PY_CONSTS:
            raise self.error(f"unexpected {word!r} at column {i + 1}: write {_PY_CONSTS[word]}", i)
        if word in _RESERVED:
            hint = "use == or !=" if word == "is" else "Python is not part of conditions"
            if self.mode == "filter":
                hint += f"; write `{word}` for a column with that name"
            raise self.error(f"unexpected {word!r} at column {i + 1}: {hint}", i)
        end = i + len(word)
        if self.mode == "when":
            try:
                ref, end = scan_reference(self.text, i)
            except ReferenceSyntaxError as e:
                raise self._from(e) from None
            return _Token("value", self.text[i:end], i, Ref(reference=ref))
        if self.text[end : end + 1] in (".", "["):
            raise self.error(
                f"unexpected {self.text[end]!r} at column {end + 1}: a filter names columns, "
                f"not paths; write `name.with.dots` in backticks for such a column, or "
                f"{{{{ a.b }}}} for a reference",
                end,
            )
        return _Token("value", word, i, Column(name=word))

    def advance(self) -> _Token:
        tok = self.tok
        end = tok.start + len(tok.text)
        self.tok = self._lex(end)
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        return self.tok.kind == kind and (text is None or self.tok.text == text)

    def parse(self) -> Node:
        if self.at("end"):
            raise self.error("empty condition: expected an expression", self.tok.start)
        node = self.or_()
        if not self.at("end"):
            raise self.unexpected("'and', 'or' or the end of the condition")
        return node

    def or_(self) -> Node:
        items = [self.and_()]
        while self.at("kw", "or"):
            self.advance()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(operands=tuple(items))

    def and_(self) -> Node:
        items = [self.not_()]
        while self.at("kw", "and"):
            self.advance()
            items.append(self.not_())
        return items[0] if len(items) == 1 else And(operands=tuple(items))

    def not_(self) -> Node:
        if self.at("kw", "not"):
            self.advance()
            return Not(operand=self.not_())
        return self.comparison()

    def compare_op(self) -> CompareOp | None:
        if self.at("op") or self.at("kw", "in"):
            return cast(CompareOp, self.advance().text)
        if self.at("kw", "not"):
            self.advance()
            if not self.at("kw", "in"):
                raise self.unexpected("'in' after 'not'")
            self.advance()
            return "not in"
        return None

    def comparison(self) -> Node:
        left = self.operand()
        op = self.compare_op()
        if op is None:
            return left
        right = self.operand()
        if self.at("op") or self.at("kw", "in") or self.at("kw", "not"):
            raise self.error(
                f"chained comparison at column {self.tok.start + 1}: write "
                "'a < b and b < c' instead of 'a < b < c'",
                self.tok.start,
            )
        return Compare(op=op, left=left, right=right)

    def operand(self) -> Node:
        tok = self.tok
        if tok.kind == "value":
            assert tok.node is not None
            self.advance()
            node = tok.node
        elif tok.kind == "punct" and tok.text == "(":
            self.advance()
            node = self.or_()
            if not self.at("punct", ")"):
                raise self.unexpected(f"')' to close '(' at column {tok.start + 1}")
            self.advance()
        elif tok.kind == "punct" and tok.text == "[":
            self.advance()
            items: list[Node] = []
            while not self.at("punct", "]"):
                items.append(self.operand())
                if not self.at("punct", ","):
                    break
                self.advance()
            if not self.at("punct", "]"):
                raise self.unexpected(f"',' or ']' to close '[' at column {tok.start + 1}")
            self.advance()
            node = ListExpr(items=tuple(items))
        else:
            raise self.unexpected("a value, a reference, '(' or '['")
        if self.at("punct", "("):
            raise self.error(
                f"unexpected '(' at column {self.tok.start + 1}: calls are not allowed",
                self.tok.start,
            )
        return node


def parse_condition(text: str, *, mode: Mode = "when") -> Condition:
    """Parse a condition; ConditionSyntaxError (with the token's offset) if it is bad."""
    try:
        node = _Parser(text, mode).parse()
    except RecursionError:
        raise ConditionSyntaxError("condition nests too deeply", offset=0) from None
    return Condition(node=node, source=text, mode=mode)


def _node(node: Node | Condition) -> Node:
    return node.node if isinstance(node, Condition) else node


def _level(node: Node) -> int:
    return {Or: 1, And: 2, Not: 3, Compare: 4}.get(type(node), 5)


def format_condition(node: Node | Condition, *, mode: Mode = "when") -> str:
    """The canonical text of a condition: ``parse_condition(format_condition(n)) == n``.

    References print bare in ``when`` mode and as ``{{…}}`` in ``filter`` mode; a
    Condition prints in its own mode. Non-finite floats cannot be printed (ValueError).
    """
    if isinstance(node, Condition):
        mode, node = node.mode, node.node

    def fmt(n: Node, min_level: int = 0) -> str:
        text = _format(n, fmt, mode)
        return f"({text})" if _level(n) <= min_level else text

    return fmt(node)


def _format(node: Node, fmt: Callable[[Node, int], str], mode: Mode) -> str:
    if isinstance(node, Or):
        return " or ".join(fmt(n, 1) for n in node.operands)
    if isinstance(node, And):
        return " and ".join(fmt(n, 2) for n in node.operands)
    if isinstance(node, Not):
        return "not " + fmt(node.operand, 2)
    if isinstance(node, Compare):
        return f"{fmt(node.left, 4)} {node.op} {fmt(node.right, 4)}"
    if isinstance(node, ListExpr):
        return "[" + ", ".join(fmt(n, 4) for n in node.items) + "]"
    if isinstance(node, Ref):
        ref = node.reference
        return str(ref) if mode == "when" and ref.root not in _RESERVED else f"{{{{{ref}}}}}"
    if isinstance(node, Column):
        plain = IDENT.fullmatch(node.name) and node.name not in _RESERVED
        return node.name if plain and mode == "filter" else quote_string(node.name, "`")
    value = node.value
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} has no literal in the condition language")
    return repr(value)


def _walk(node: Node) -> list[Node]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        out.append(n)
        if isinstance(n, And | Or):
            stack.extend(reversed(n.operands))
        elif isinstance(n, Not):
            stack.append(n.operand)
        elif isinstance(n, Compare):
            stack.extend((n.right, n.left))
        elif isinstance(n, ListExpr):
            stack.extend(reversed(n.items))
    return out


def references(node: Node | Condition) -> list[Reference]:
    """Every reference in the condition, in source order (the validator checks them)."""
    return [n.reference for n in _walk(_node(node)) if isinstance(n, Ref)]


def columns(node: Node | Condition) -> list[str]:
    """Every column name in the condition, in source order."""
    return [n.name for n in _walk(_node(node)) if isinstance(n, Column)]


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)


def _is_array(v: Any) -> bool:
    return isinstance(v, Sequence) and not isinstance(v, str | bytes | bytearray)


def _type(v: Any) -> str:
    if v is None or isinstance(v, bool | str):
        return {type(None): "null", bool: "boolean", str: "string"}[type(v)]
    if _is_number(v):
        return "number"
    return "object" if isinstance(v, Mapping) else "array" if _is_array(v) else type(v).__name__


def _show(v: Any) -> str:
    scalar = v is None or isinstance(v, bool | str)
    text = format_condition(Const(value=v)) if scalar else value_to_text(v)
    return f"{text[:60]}… ({_type(v)})" if len(text) > 60 else f"{text} ({_type(v)})"


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but no coercion between strings, numbers and booleans."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if type(a) in (bool, str, type(None)) or type(b) in (bool, str, type(None)):
        return type(a) is type(b) and a == b
    if _is_array(a) and _is_array(b):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def truthy(value: Any) -> bool:
    """JSON truthiness, as Python's: null, false, 0, "", [] and {} are false."""
    return bool(value)


def _compare(op: CompareOp, a: Any, b: Any) -> bool:
    if op in ("==", "!="):
        return json_equal(a, b) == (op == "==")
    if op in ("in", "not in"):
        if isinstance(b, str | Mapping):
            if not isinstance(a, str):
                what = "a string" if isinstance(b, str) else "an object"
                raise ConditionEvaluationError(
                    f"{_show(a)} {op} {_show(b)}: 'in' over {what} needs a string on the left"
                )
            found_ = a in b
        elif _is_array(b):
            found_ = any(json_equal(a, item) for item in b)
        else:
            raise ConditionEvaluationError(
                f"{_show(a)} {op} {_show(b)}: 'in' needs a list, a string or an object on the right"
            )
        return found_ == (op == "in")
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise ConditionEvaluationError(
            f"cannot compare {_show(a)} {op} {_show(b)}: '{op}' needs two numbers or two strings"
        )
    return bool(_ORDER[op](a, b))


def evaluate(node: Node | Condition, lookup: Callable[[Ref | Column], Any]) -> bool:
    """Evaluate a condition; ``lookup`` gives the value of a reference or a column.

    ``==``/``!=`` compare any JSON values (see :func:`json_equal`); ordering needs two
    numbers or two strings; ``in`` tests membership in a list, a substring of a string or
    a key of an object; anything else raises ConditionEvaluationError naming both values.
    A value used as a condition counts by :func:`truthy`. ``and``/``or`` short-circuit.
    Errors from ``lookup`` propagate.
    """

    def value(n: Node) -> Any:
        if isinstance(n, Ref | Column):
            return lookup(n)
        if isinstance(n, Const):
            return n.value
        if isinstance(n, ListExpr):
            return [value(item) for item in n.items]
        if isinstance(n, Compare):
            return _compare(n.op, value(n.left), value(n.right))
        if isinstance(n, Not):
            return not truthy(value(n.operand))
        if isinstance(n, And):
            return all(truthy(value(item)) for item in n.operands)
        if isinstance(n, Or):
            return any(truthy(value(item)) for item in n.operands)
        raise TypeError(f"not a condition node: {n!r}")

    return truthy(value(_node(node)))
