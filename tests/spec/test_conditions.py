from __future__ import annotations

import operator
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vecron.errors import ConditionEvaluationError, ConditionSyntaxError, ReferenceResolutionError
from vecron.spec import conditions
from vecron.spec.conditions import (
    And,
    Column,
    Compare,
    Condition,
    Const,
    ListExpr,
    Node,
    Not,
    Or,
    Ref,
    columns,
    evaluate,
    format_condition,
    parse_condition,
    references,
)
from vecron.spec.references import Index, Key, Reference, parse_reference, resolve


def r(text: str) -> Ref:
    return Ref(reference=parse_reference(text))


def c(value: Any) -> Const:
    return Const(value=value)


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("steps.a.output.n > 0", Compare(op=">", left=r("steps.a.output.n"), right=c(0))),
        (
            "webhook.payload.kind == 'push'",
            Compare(op="==", left=r("webhook.payload.kind"), right=c("push")),
        ),
        ('{{ steps.a.b }} != "x"', Compare(op="!=", left=r("steps.a.b"), right=c("x"))),
        ("a.b[0]['x y'] <= -1.5", Compare(op="<=", left=r("a.b[0]['x y']"), right=c(-1.5))),
        ("a >= 1e3", Compare(op=">=", left=r("a"), right=c(1000.0))),
        ("a < 2.5E-1", Compare(op="<", left=r("a"), right=c(0.25))),
        (
            "a in [1, 'a', true, null, [false]]",
            Compare(
                op="in",
                left=r("a"),
                right=ListExpr(items=(c(1), c("a"), c(True), c(None), ListExpr(items=(c(False),)))),
            ),
        ),
        ("a not in []", Compare(op="not in", left=r("a"), right=ListExpr())),
        ("a in [b, 1,]", Compare(op="in", left=r("a"), right=ListExpr(items=(r("b"), c(1))))),
        ("steps.a.output.ok", r("steps.a.output.ok")),
        ("true", c(True)),
        ("'it\\'s'", c("it's")),
        ("not a", Not(operand=r("a"))),
        ("not not a", Not(operand=Not(operand=r("a")))),
        ("not a == 1", Not(operand=Compare(op="==", left=r("a"), right=c(1)))),
        ("a and b and c", And(operands=(r("a"), r("b"), r("c")))),
        ("a or b and c", Or(operands=(r("a"), And(operands=(r("b"), r("c")))))),
        ("(a or b) and c", And(operands=(Or(operands=(r("a"), r("b"))), r("c")))),
        ("not a and b", And(operands=(Not(operand=r("a")), r("b")))),
        (
            "(a < b) == false",
            Compare(op="==", left=Compare(op="<", left=r("a"), right=r("b")), right=c(False)),
        ),
        ("steps.a.in == 1", Compare(op="==", left=r("steps.a.in"), right=c(1))),
        ("  ( ( a ) )  ", r("a")),
    ],
)
def test_parse_when(text: str, node: Node) -> None:
    condition = parse_condition(text)
    assert condition.node == node
    assert condition.source == text
    assert condition.mode == "when"


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("amount > 10", Compare(op=">", left=Column(name="amount"), right=c(10))),
        ("`first name` == 'Bob'", Compare(op="==", left=Column(name="first name"), right=c("Bob"))),
        ("`a.b` == 1", Compare(op="==", left=Column(name="a.b"), right=c(1))),
        ("`it\\`s` == 1", Compare(op="==", left=Column(name="it`s"), right=c(1))),
        ("`class` == 1", Compare(op="==", left=Column(name="class"), right=c(1))),
        (
            "total >= {{ steps.a.output.min }}",
            Compare(op=">=", left=Column(name="total"), right=r("steps.a.output.min")),
        ),
        ("active", Column(name="active")),
    ],
)
def test_parse_filter(text: str, node: Node) -> None:
    assert parse_condition(text, mode="filter").node == node


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("", 0, "empty condition"),
        ("   ", 3, "empty condition"),
        ("a <", 3, "unexpected end of the condition at column 4: expected a value"),
        ("a < b < c", 6, "chained comparison at column 7"),
        ("a == b != c", 7, "chained comparison"),
        ("a == b not in c", 7, "chained comparison"),
        ("(a", 2, "expected ')' to close '(' at column 1"),
        ("a)", 1, "unexpected ')' at column 2: expected 'and', 'or' or the end"),
        ("[1, 2", 5, "expected ',' or ']' to close '[' at column 1"),
        ("[1 2]", 3, "expected ',' or ']'"),
        ("a b", 2, "unexpected 'b' at column 3"),
        ("a not b", 6, "expected 'in' after 'not'"),
        ("a = 1", 2, "'=' is not a comparison; use '=='"),
        ("a && b", 2, "use 'and'"),
        ("a || b", 2, "use 'or'"),
        ("!a", 0, "use 'not'"),
        ("a - 1 > 0", 2, "arithmetic is not allowed"),
        ("a > -b", 4, "arithmetic is not allowed"),
        ("'abc", 0, "unterminated string"),
        ("a == 'x\\q'", 7, "unknown escape"),
        ("1abc", 0, "unexpected '1abc'"),
        ("1.5.2", 3, "unexpected '.'"),
        ("a==1and b", 3, "unexpected '1and'"),
        ("True", 0, "write true"),
        ("a == None", 5, "write null"),
        ("a is null", 2, "use == or !="),
        ("${X} == 1", 0, "write variables.NAME"),
        ("`a` == 1", 0, "only in filter conditions"),
        ("{{ a", 4, "expected '}}' to close '{{' at column 1"),
        ("x == {{ a. }}", 10, "expected a key name after '.', found ' ' (at column 11)"),
        ("{{ 1 }}", 3, "expected a reference"),
        ("a[1", 3, "expected ']' to close '['"),
        ("{a: 1}", 0, "unexpected '{'"),
    ],
)
def test_syntax_errors(text: str, offset: int, message: str) -> None:
    with pytest.raises(ConditionSyntaxError, match=re.escape(message)) as info:
        parse_condition(text)
    assert info.value.offset == offset


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("a.b == 1", 1, "a filter names columns, not paths"),
        ("a[0] == 1", 1, "a filter names columns, not paths"),
        ("class == 1", 0, "write `class` for a column with that name"),
        ("`abc == 1", 0, "unterminated string"),
    ],
)
def test_filter_syntax_errors(text: str, offset: int, message: str) -> None:
    with pytest.raises(ConditionSyntaxError, match=re.escape(message)) as info:
        parse_condition(text, mode="filter")
    assert info.value.offset == offset


_CODE = [
    "__import__('os').system('x')",
    "a.__class__",
    "a.__class__.__bases__[0].__subclasses__()",
    "().__class__",
    "f(x)",
    "a.b()",
    "steps.a.output.n(1)",
    "'{}'.format(a)",
    "getattr(a, 'b')",
    "a + b",
    "a * 2",
    "a ** 2",
    "a @ b",
    "~a",
    "lambda: 1",
    "a if b else c",
    "[x for x in y]",
    "{'a': 1}",
    "a; b",
    "import os",
    "exec('1')",
    "eval('1')",
    "a := 1",
    "(a)(b)",
    "true(1)",
    "\"a\" 'b'",
]


@pytest.mark.parametrize("mode", ["when", "filter"])
@pytest.mark.parametrize("text", _CODE)
def test_code_is_a_syntax_error(text: str, mode: conditions.Mode) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text, mode=mode)
    assert info.value.offset is not None
    assert 0 <= info.value.offset <= len(text)


def test_calls_are_named_in_the_message() -> None:
    with pytest.raises(ConditionSyntaxError, match=r"unexpected '\(' at column 11: calls"):
        parse_condition("__import__('os').system('x')")
    with pytest.raises(ConditionSyntaxError, match="attribute access") as info:
        parse_condition("a.__class__")
    assert info.value.offset == 2


def test_the_module_never_evaluates_python() -> None:
    source = Path(conditions.__file__).read_text()
    assert not re.search(r"(?<![.\w])(eval|exec|compile|__import__|getattr)\(", source)


def test_deep_nesting_is_a_syntax_error() -> None:
    with pytest.raises(ConditionSyntaxError, match="nests too deeply"):
        parse_condition("(" * 5000 + "a" + ")" * 5000)


# -- references, columns, format ----------------------------------------------------------


def test_references_and_columns_in_source_order() -> None:
    condition = parse_condition("a.x > 1 and (b in [c, 1] or not {{ d }})")
    assert references(condition) == [parse_reference(t) for t in ("a.x", "b", "c", "d")]
    assert columns(condition) == []
    assert [ref.step_id for ref in references(parse_condition("steps.x.output.n"))] == ["x"]
    filt = parse_condition("`b c` == a or {{ steps.s.output.v }} in [d]", mode="filter")
    assert columns(filt) == ["b c", "a", "d"]
    assert columns(filt.node) == ["b c", "a", "d"]
    assert references(filt) == [parse_reference("steps.s.output.v")]


@pytest.mark.parametrize(
    ("text", "mode", "canonical"),
    [
        ("a==1", "when", "a == 1"),
        ("{{ a.b }} == 1", "when", "a.b == 1"),
        ('webhook.headers["x-id"] == "v"', "when", "webhook.headers.x-id == 'v'"),
        ("a.b['__class__'] == 1", "when", "a.b['__class__'] == 1"),
        ("{{ lambda }} == {{ true.x }}", "when", "{{lambda}} == {{true.x}}"),
        ("not (a and b) or c", "when", "not (a and b) or c"),
        ("(a or b) or c", "when", "(a or b) or c"),
        ("(a == 1) == (b == 2)", "when", "(a == 1) == (b == 2)"),
        ("a in [ (b and c) , -2.50 ]", "when", "a in [(b and c), -2.5]"),
        ("x == {{ a.b }}", "filter", "x == {{a.b}}"),
        ("`x` == `y z`", "filter", "x == `y z`"),
        ("`in` == `1a`", "filter", "`in` == `1a`"),
    ],
)
def test_format_canonical(text: str, mode: conditions.Mode, canonical: str) -> None:
    condition = parse_condition(text, mode=mode)
    assert format_condition(condition) == canonical
    assert format_condition(condition.node, mode=mode) == canonical


def test_format_refuses_non_finite_numbers() -> None:
    with pytest.raises(ValueError, match="no literal"):
        format_condition(c(float("nan")))


def test_and_or_need_two_operands() -> None:
    with pytest.raises(ValueError, match="two or more"):
        And(operands=(c(1),))
    with pytest.raises(ValueError, match="two or more"):
        Or(operands=())


def test_const_equality_keeps_types() -> None:
    assert c(1) != c(True)
    assert c(1) != c(1.0)
    assert c(None) == c(None)
    assert len({c(1), c(True), c(1.0)}) == 3


_ROOTS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]*", fullmatch=True)
_KEYS = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["in", "not", "__class__", "a b", "x-y", "'", "`", "*"]),
)
_REFS = st.builds(
    lambda root, path: Ref(reference=Reference(root=root, path=tuple(path))),
    st.one_of(_ROOTS, st.sampled_from(["and", "not", "true", "None", "lambda", "steps"])),
    st.lists(
        st.one_of(
            _KEYS.map(lambda k: Key(name=k)), st.integers(-5, 5).map(lambda i: Index(index=i))
        ),
        max_size=3,
    ),
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
_COLUMNS = st.one_of(
    st.text(max_size=6), _ROOTS, st.sampled_from(["in", "is", "True", "a.b", "`"])
).map(lambda n: Column(name=n))
_OPS = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"])


def _trees(leaves: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        return st.one_of(
            st.lists(children, max_size=3).map(lambda items: ListExpr(items=tuple(items))),
            st.builds(lambda op, a, b: Compare(op=op, left=a, right=b), _OPS, children, children),
            children.map(lambda n: Not(operand=n)),
            st.lists(children, min_size=2, max_size=3).map(lambda n: And(operands=tuple(n))),
            st.lists(children, min_size=2, max_size=3).map(lambda n: Or(operands=tuple(n))),
        )

    return st.recursive(leaves, extend, max_leaves=10)


@given(_trees(st.one_of(_SCALARS.map(c), _REFS)))
def test_when_round_trip(node: Node) -> None:
    text = format_condition(node)
    assert parse_condition(text).node == node
    assert format_condition(parse_condition(text)) == text


@given(_trees(st.one_of(_SCALARS.map(c), _REFS, _COLUMNS)))
def test_filter_round_trip(node: Node) -> None:
    text = format_condition(node, mode="filter")
    assert parse_condition(text, mode="filter").node == node


# -- evaluation ---------------------------------------------------------------------------


def _eval(text: str, values: dict[str, Any] | None = None, mode: conditions.Mode = "when") -> bool:
    def lookup(node: Ref | Column) -> Any:
        if isinstance(node, Column):
            return (values or {})[node.name]
        return resolve(node.reference, values or {})

    return evaluate(parse_condition(text, mode=mode), lookup)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 == 1.0", True),
        ("'1' == 1", False),
        ("'1' != 1", True),
        ("true == 1", False),
        ("false == 0", False),
        ("null == null", True),
        ("null == false", False),
        ("[1, 'a'] == [1.0, 'a']", True),
        ("[1] == [true]", False),
        ("obj == obj2", True),
        ("obj == {{ obj3 }}", False),
        ("2 > 1.5", True),
        ("'b' > 'a'", True),
        ("'a' <= 'a'", True),
        ("-1 < 0", True),
        ("1 in [1, 2]", True),
        ("true in [1]", False),
        ("3 not in [1, 2]", True),
        ("'ell' in 'hello'", True),
        ("'x' not in 'hello'", True),
        ("'k' in obj", True),
        ("'z' in obj", False),
        ("dec == 1.5 and dec > 1", True),
        ("n", True),
        ("zero", False),
        ("empty", False),
        ("none", False),
        ("'0'", True),
        ("0.0", False),
        ("[]", False),
        ("[0]", True),
        ("not zero and n", True),
        ("zero or empty or none", False),
        ("(1 < 2) == true", True),
    ],
)
def test_evaluate(text: str, expected: bool) -> None:
    values = {
        "obj": {"k": [1, 2]},
        "obj2": {"k": [1.0, 2]},
        "obj3": {"k": [1]},
        "n": 5,
        "zero": 0,
        "empty": "",
        "none": None,
        "dec": Decimal("1.5"),
    }
    assert _eval(text, values) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 < 'a'", "cannot compare 1 (number) < 'a' (string): '<' needs two numbers or two"),
        ("n >= 1", "cannot compare null (null) >= 1 (number)"),
        ("true > false", "(boolean)"),
        ("[1] < [2]", "cannot compare [1] (array) < [2] (array)"),
        ("{{ obj }} > 1", 'cannot compare {"a":1} (object) > 1 (number)'),
        ("1 in 5", "'in' needs a list, a string or an object on the right"),
        ("1 in 'abc'", "'in' over a string needs a string on the left"),
        ("1 not in {{ obj }}", "'in' over an object needs a string on the left"),
    ],
)
def test_evaluation_errors(text: str, message: str) -> None:
    with pytest.raises(ConditionEvaluationError, match=re.escape(message)):
        _eval(text, {"n": None, "obj": {"a": 1}})


def test_long_values_are_shortened_in_errors() -> None:
    with pytest.raises(ConditionEvaluationError, match=r"'xxxx+… \(string\)"):
        _eval("s < 1", {"s": "x" * 500})


def test_and_or_short_circuit() -> None:
    seen: list[str] = []

    def lookup(node: Ref | Column) -> Any:
        assert isinstance(node, Ref)
        seen.append(node.reference.root)
        if node.reference.root == "boom":
            raise ReferenceResolutionError("boom")
        return node.reference.root == "yes"

    assert evaluate(parse_condition("no and boom"), lookup) is False
    assert evaluate(parse_condition("yes or boom"), lookup) is True
    assert seen == ["no", "yes"]
    with pytest.raises(ReferenceResolutionError):
        evaluate(parse_condition("yes and boom"), lookup)


def test_filter_evaluation_over_a_row() -> None:
    row = {"first name": "Bob", "age": 20}
    assert _eval("`first name` == 'Bob' and age >= 18", row, mode="filter") is True
    assert _eval("age in [1, 2]", row, mode="filter") is False


def test_evaluate_rejects_foreign_nodes() -> None:
    with pytest.raises(TypeError, match="not a condition node"):
        evaluate(Not(operand="x"), lambda n: None)  # type: ignore[arg-type]


_NUMBERS = st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False))
_STRINGS = st.text(alphabet="abcAB ", max_size=4)
_VALUES = st.one_of(_NUMBERS, _STRINGS)
_PY = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _python(op: str, a: Any, b: Any) -> bool | None:
    """The plain Python answer, or None where the condition language must refuse."""
    if op in ("in", "not in"):
        if not (isinstance(a, str) and isinstance(b, str)):
            return None
        return (a in b) == (op == "in")
    if op not in ("==", "!=") and isinstance(a, str) != isinstance(b, str):
        return None
    return bool(_PY[op](a, b))


@given(_OPS, _VALUES, _VALUES, st.booleans())
def test_comparisons_agree_with_python(op: str, a: Any, b: Any, through_refs: bool) -> None:
    node = Compare(
        op=op,
        left=r("a") if through_refs else c(a),  # type: ignore[arg-type]
        right=r("b") if through_refs else c(b),
    )
    expected = _python(op, a, b)
    lookup = lambda n: {"a": a, "b": b}[n.reference.root]  # noqa: E731
    if expected is None:
        with pytest.raises(ConditionEvaluationError):
            evaluate(node, lookup)
    else:
        assert evaluate(node, lookup) is expected
        assert evaluate(parse_condition(format_condition(node)), lookup) is expected


def _numeric_compares() -> st.SearchStrategy[Node]:
    return st.builds(
        lambda op, a, b: Compare(op=op, left=c(a), right=c(b)),
        st.sampled_from(list(_PY)),
        _NUMBERS,
        _NUMBERS,
    )


def _python_bool(node: Node) -> bool:
    if isinstance(node, Compare):
        return bool(_PY[node.op](node.left.value, node.right.value))  # type: ignore[union-attr]
    if isinstance(node, Not):
        return not _python_bool(node.operand)
    if isinstance(node, And):
        return all(_python_bool(n) for n in node.operands)
    assert isinstance(node, Or)
    return any(_python_bool(n) for n in node.operands)


@given(
    st.recursive(
        _numeric_compares(),
        lambda children: st.one_of(
            children.map(lambda n: Not(operand=n)),
            st.lists(children, min_size=2, max_size=3).map(lambda n: And(operands=tuple(n))),
            st.lists(children, min_size=2, max_size=3).map(lambda n: Or(operands=tuple(n))),
        ),
        max_leaves=12,
    )
)
def test_boolean_logic_agrees_with_python(node: Node) -> None:
    def lookup(n: Ref | Column) -> Any:
        raise AssertionError("no references here")

    assert evaluate(node, lookup) is _python_bool(node)
    assert evaluate(Condition(node=node, source=""), lookup) is _python_bool(node)


_SOURCE = st.text(
    st.one_of(st.sampled_from(list("ab.[]()'\"`{}$=<>!, -0123456789*")), st.characters()),
    max_size=16,
) | st.lists(
    st.sampled_from(
        [
            "a",
            "b.c",
            "and",
            "or",
            "not",
            "in",
            "==",
            "<",
            "(",
            ")",
            "[",
            "]",
            ",",
            "1",
            "-2.5",
            "'s'",
            "true",
            "null",
            "{{x}}",
            "`c`",
        ]
    ),
    max_size=8,
).map(" ".join)


@pytest.mark.parametrize("mode", ["when", "filter"])
@given(text=_SOURCE)
def test_any_text_parses_or_fails_with_an_offset(mode: conditions.Mode, text: str) -> None:
    try:
        condition = parse_condition(text, mode=mode)
    except ConditionSyntaxError as e:
        offset = e.offset
        assert offset is not None
        assert 0 <= offset <= len(text)
        return
    canonical = format_condition(condition)
    assert parse_condition(canonical, mode=mode).node == condition.node
