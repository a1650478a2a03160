from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

import jsonpath_ng
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from vecron.errors import ReferenceResolutionError, ReferenceSyntaxError
from vecron.spec.references import (
    Index,
    Key,
    Literal,
    Reference,
    ReferencePart,
    Template,
    Variable,
    VariablePart,
    Wildcard,
    has_template,
    parse_reference,
    parse_template,
    render,
    resolve,
    value_to_text,
)


def ref(root: str, *path: str | int | None) -> Reference:
    """Build a reference: a str is a key, an int an index, None a wildcard."""
    segments = [
        Wildcard() if p is None else Index(index=p) if isinstance(p, int) else Key(name=p)
        for p in path
    ]
    return Reference(root=root, path=tuple(segments))


# -- parsing references -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps.fetch.response.body.id", ref("steps", "fetch", "response", "body", "id")),
        ("webhook.payload.items[0].sku", ref("webhook", "payload", "items", 0, "sku")),
        ("webhook.headers['x-request-id']", ref("webhook", "headers", "x-request-id")),
        ('webhook.headers["x y"]', ref("webhook", "headers", "x y")),
        ("steps.a.output.rows[*].id", ref("steps", "a", "output", "rows", None, "id")),
        ("steps.a.rows.*.id", ref("steps", "a", "rows", None, "id")),
        ("steps.fetch-users.output", ref("steps", "fetch-users", "output")),
        ("a[-1]", ref("a", -1)),
        ("a[ 2 ]", ref("a", 2)),
        ("a[007]", ref("a", 7)),
        ("  job.name  ", ref("job", "name")),
        ("a['it\\'s']", ref("a", "it's")),
        ("a['\\\\ \\n \\t \\r \\\" \\u00e9']", ref("a", '\\ \n \t \r " é')),
        ("a['__class__']", ref("a", "__class__")),
        ("a.__typename", ref("a", "__typename")),
        ("execution", ref("execution")),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("", 0, "expected a reference"),
        ("1abc", 0, "found '1abc'"),
        ("a.", 2, "expected a key name after '.', found end of text"),
        ("a.1", 2, "expected a key name after '.', found '1'"),
        ("a[", 2, "expected an index, a quoted key or * after '['"),
        ("a[x]", 2, "found 'x'"),
        ("a[1", 3, "expected ']' to close '['"),
        ("a['x'", 5, "expected ']'"),
        ("a['x", 2, "unterminated string"),
        ("a['x\\", 2, "unterminated string"),
        ("a['\\q']", 3, "unknown escape '\\\\q'"),
        ("a['\\u12']", 3, "unknown escape '\\\\u'"),
        ("a.__class__", 2, "'__class__' reads as attribute access"),
        ("a b", 2, "unexpected 'b' after reference 'a'"),
        ("a.b()", 3, "unexpected '('"),
    ],
)
def test_parse_reference_errors(text: str, offset: int, message: str) -> None:
    with pytest.raises(ReferenceSyntaxError, match=re.escape(message)) as info:
        parse_reference(text)
    assert info.value.offset == offset


def test_reference_str_and_step_id() -> None:
    r = ref("steps", "a", "b", 0, "x y", None, "__class__", "it's")
    assert str(r) == "steps.a.b[0]['x y'][*]['__class__']['it\\'s']"
    assert r.step_id == "a"
    assert ref("webhook", "a").step_id is None
    assert ref("steps").step_id is None
    assert ref("steps", 0).step_id is None


def test_reference_root_must_be_a_name() -> None:
    with pytest.raises(ValueError, match="not a name"):
        Reference(root="a b")
    with pytest.raises(ValueError, match="not a name"):
        Variable(name="1x")


_ROOTS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]*", fullmatch=True)
_ODD = st.sampled_from(["*", "__class__", "a b", "it's", 'q"', "\\", "where", "0", "-", "", "é"])
_KEYS = st.one_of(
    st.text(max_size=8), st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]*", fullmatch=True), _ODD
)
_SEGMENTS = st.one_of(
    _KEYS.map(lambda k: Key(name=k)),
    st.integers(-(10**6), 10**6).map(lambda i: Index(index=i)),
    st.just(Wildcard()),
)
REFERENCES = st.builds(
    lambda root, path: Reference(root=root, path=tuple(path)),
    _ROOTS,
    st.lists(_SEGMENTS, max_size=6),
)


@given(REFERENCES)
def test_reference_round_trip(reference: Reference) -> None:
    assert parse_reference(str(reference)) == reference


# -- resolve ------------------------------------------------------------------------------

CONTEXT: dict[str, Any] = {
    "steps": {
        "fetch": {"response": {"body": {"name": "n", "email": "e"}}},
        "a": {"output": {"rows": [{"id": 1}, {"x": 2}, {"id": [3]}], "n": 5, "empty": {}}},
    },
    "webhook": {"headers": {"x-request-id": "r1"}, "payload": {"items": [{"sku": "S"}]}},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("steps.fetch.response.body.name", "n"),
        ("webhook.payload.items[0].sku", "S"),
        ("webhook.payload.items[-1]", {"sku": "S"}),
        ("webhook.headers['x-request-id']", "r1"),
        ("steps.a.output.rows[*].id", [1, [3]]),
        ("steps.a.output.rows[*].id[*]", [3]),
        ("steps.fetch.response.body[*]", ["n", "e"]),
        ("steps.a.output.rows[*]", [{"id": 1}, {"x": 2}, {"id": [3]}]),
        ("steps.a.output.empty[*]", []),
        ("steps", CONTEXT["steps"]),
    ],
)
def test_resolve(text: str, expected: Any) -> None:
    assert resolve(parse_reference(text), CONTEXT) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "steps.fetch.response.body.id",
            "steps.fetch.response.body.id: 'id' not found in steps.fetch.response.body "
            "(keys: name, email)",
        ),
        ("nope.x", "nope.x: 'nope' not found in the context (keys: steps, webhook)"),
        (
            "steps.a.output.rows[3]",
            "steps.a.output.rows[3]: index 3 out of range in steps.a.output.rows (3 items)",
        ),
        ("steps.a.output.rows[-4]", "index -4 out of range"),
        ("steps.a.output.rows.x", "'x' not found in steps.a.output.rows, which is an array"),
        ("steps.a.output.n[0]", "index 0 not found in steps.a.output.n, which is a number"),
        ("steps.a.output.n[*]", "cannot expand [*] over steps.a.output.n, which is a number"),
        ("steps.a.output.empty.k", "'k' not found in steps.a.output.empty (no keys)"),
        ("webhook.headers['x-request-id'].v", "which is a string, not an object"),
    ],
)
def test_resolve_errors_name_the_path(text: str, message: str) -> None:
    with pytest.raises(ReferenceResolutionError, match=re.escape(message)):
        resolve(parse_reference(text), CONTEXT)


def test_resolve_error_is_a_lookup_error_and_truncates_keys() -> None:
    context = {"r": {f"k{i}": i for i in range(30)}}
    with pytest.raises(LookupError, match=r"k19, …\)$"):
        resolve(ref("r", "zz"), context)


# -- to_jsonpath agrees with resolve ------------------------------------------------------


def test_to_jsonpath_examples() -> None:
    r = parse_reference("steps.a.b[0]['x y']")
    assert r.to_jsonpath() == "$.steps.a.b[0]['x y']"
    assert ref("a", "where", "it's", "b\\").to_jsonpath() == "$.a['where']['it\\'s']['b\\\\']"
    for reference in (r, ref("a", "where", "it's", "b\\", -1, None, "fetch-users")):
        jsonpath_ng.parse(reference.to_jsonpath())
    with pytest.raises(ValueError, match="key named"):
        ref("a", "*").to_jsonpath()


_JSONPATH_KEYS = _KEYS.filter(lambda k: k != "*")
_PATH_SEGMENTS = st.one_of(
    _JSONPATH_KEYS.map(lambda k: Key(name=k)),
    st.integers(-3, 3).map(lambda i: Index(index=i)),
    st.just(Wildcard()),
)


@st.composite
def _context_holding(draw: st.DrawFn, path: tuple[Any, ...]) -> Any:
    """A value in which ``path`` exists, with noise that JSONPath skips."""
    if not path:
        return draw(st.one_of(st.integers(), st.text(max_size=3), st.none()))
    seg, rest = path[0], path[1:]
    if isinstance(seg, Key):
        value = {seg.name: draw(_context_holding(rest))}
        for extra in draw(st.lists(_JSONPATH_KEYS, max_size=2)):
            value.setdefault(extra, draw(st.integers()))
        return value
    if isinstance(seg, Index):
        size = draw(st.integers(max(seg.index + 1, -seg.index), 5))
        items: list[Any] = [None] * size
        items[seg.index] = draw(_context_holding(rest))
        return items
    # None and [] are skipped alike by resolve and by jsonpath-ng after a wildcard.
    children = st.one_of(_context_holding(rest), st.sampled_from([None, []]))
    return draw(st.lists(children, max_size=3))


@given(st.data())
def test_to_jsonpath_agrees_with_resolve(data: st.DataObject) -> None:
    root = data.draw(_ROOTS.filter(lambda r: r not in ("where", "wherenot")))
    reference = Reference(root=root, path=tuple(data.draw(st.lists(_PATH_SEGMENTS, max_size=5))))
    context = {root: data.draw(_context_holding(reference.path))}
    found = [m.value for m in jsonpath_ng.parse(reference.to_jsonpath()).find(context)]
    value = resolve(reference, context)
    assert found == (value if any(isinstance(s, Wildcard) for s in reference.path) else [value])


def test_to_jsonpath_finds_nothing_where_resolve_fails() -> None:
    for text in ("steps.fetch.response.body.id", "steps.a.output.rows[3]", "nope"):
        reference = parse_reference(text)
        with pytest.raises(ReferenceResolutionError):
            resolve(reference, CONTEXT)
        assert jsonpath_ng.parse(reference.to_jsonpath()).find(CONTEXT) == []


# -- templates ----------------------------------------------------------------------------


def test_has_template() -> None:
    assert has_template("a {{ b }}")
    assert has_template("${X}")
    assert has_template("$${X}")
    assert not has_template("plain $ { } }} text")


def test_parse_template_parts_and_offsets() -> None:
    text = "Hi {{ steps.a.output.name }}, ${PARTNER} / ${secret:TOKEN}!"
    t = parse_template(text)
    assert t.parts == (
        Literal(text="Hi "),
        ReferencePart(reference=ref("steps", "a", "output", "name")),
        Literal(text=", "),
        VariablePart(variable=Variable(name="PARTNER", secret=False)),
        Literal(text=" / "),
        VariablePart(variable=Variable(name="TOKEN", secret=True)),
        Literal(text="!"),
    )
    assert [text[p.start : p.end] for p in t.parts] == [
        "Hi ",
        "{{ steps.a.output.name }}",
        ", ",
        "${PARTNER}",
        " / ",
        "${secret:TOKEN}",
        "!",
    ]
    assert t.references == (ref("steps", "a", "output", "name"),)
    assert t.variables == (Variable(name="PARTNER"), Variable(name="TOKEN", secret=True))
    assert not t.is_single_value
    assert str(t) == "Hi {{steps.a.output.name}}, ${PARTNER} / ${secret:TOKEN}!"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("", ()),
        ("plain", (Literal(text="plain"),)),
        ("$${X}", (Literal(text="${X}"),)),
        ("a $$ b $", (Literal(text="a $$ b $"),)),
        ("{{ '{{' }} x }}", (Literal(text="{{ x }}"),)),
        ('{{"it\'s"}}', (Literal(text="it's"),)),
        ("${{a}}", (Literal(text="$"), ReferencePart(reference=ref("a")))),
        ("$${{a}}", (Literal(text="${{a}}"),)),
        ("}} { $ {", (Literal(text="}} { $ {"),)),
        ("{{a}}}", (ReferencePart(reference=ref("a")), Literal(text="}"))),
        ("{{ a['}}'] }}", (ReferencePart(reference=ref("a", "}}")),)),
    ],
)
def test_template_escapes(text: str, parts: tuple[Any, ...]) -> None:
    assert parse_template(text).parts == parts


@pytest.mark.parametrize(
    ("text", "single"),
    [
        ("{{ a }}", True),
        ("{{a.b[0]}}", True),
        ("${X}", True),
        ("${secret:X}", True),
        (" {{ a }}", False),
        ("{{ a }}\n", False),
        ("{{ a }}{{ b }}", False),
        ("{{ 'text' }}", False),
        ("x", False),
        ("", False),
    ],
)
def test_is_single_value(text: str, single: bool) -> None:
    assert parse_template(text).is_single_value is single


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("a {{ b", 6, "reference at offset 2: expected '}}' to close it, found end of text"),
        ("{{ b c }}", 5, "reference at offset 0: expected '}}' to close it, found 'c'"),
        ("{{ }}", 3, "expected a reference inside '{{ }}', found '}}'"),
        ("{{}}", 2, "expected a reference inside '{{ }}'"),
        ("{{ 1 }}", 3, "expected a reference"),
        ("x {{ a.b[ }}", 10, "reference at offset 2: expected an index, a quoted key or *"),
        ("{{ a.__class__ }}", 5, "attribute access"),
        ("x ${", 4, "expected a variable name after '${', found end of text"),
        ("${ X}", 2, "found ' '"),
        ("${1X}", 2, "found '1X'"),
        ("${X", 3, "expected '}' to close '${' at offset 0"),
        ("${X-Y}", 3, "found '-'"),
        ("${secret:}", 9, "expected a secret name after '${secret:'"),
        ("{{ 'a }}", 3, "unterminated string"),
    ],
)
def test_template_errors(text: str, offset: int, message: str) -> None:
    with pytest.raises(ReferenceSyntaxError, match=re.escape(message)) as info:
        parse_template(text)
    assert info.value.offset == offset


_TEXT = st.text(st.one_of(st.sampled_from("${}'\"\\ a"), st.characters()), max_size=8)
_PARTS = st.one_of(
    _TEXT.map(lambda t: Literal(text=t)),
    REFERENCES.map(lambda r: ReferencePart(reference=r)),
    st.builds(
        lambda n, s: VariablePart(variable=Variable(name=n, secret=s)), _ROOTS, st.booleans()
    ),
)


def _normalise(parts: list[Any]) -> Template:
    out: list[Any] = []
    for part in parts:
        if isinstance(part, Literal) and out and isinstance(out[-1], Literal):
            out[-1] = Literal(text=out[-1].text + part.text)
        else:
            out.append(part)
    return Template(parts=tuple(p for p in out if not (isinstance(p, Literal) and not p.text)))


@given(st.lists(_PARTS, max_size=6).map(_normalise))
def test_template_round_trip(template: Template) -> None:
    assert parse_template(str(template)) == template


@given(_TEXT)
def test_any_text_parses_or_fails_with_an_offset(text: str) -> None:
    try:
        template = parse_template(text)
    except ReferenceSyntaxError as e:
        offset = e.offset
        assert offset is not None
        assert 0 <= offset <= len(text)
        return
    assert parse_template(str(template)) == template
    if not has_template(text):
        assert "".join(p.text for p in template.parts) == text  # type: ignore[union-attr]


@given(st.text(max_size=20))
def test_literal_offsets_cover_the_source(text: str) -> None:
    assume("{{" not in text)
    try:
        template = parse_template(text)
    except ReferenceSyntaxError:
        return
    spans = [(p.start, p.end) for p in template.parts]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    if spans:
        assert spans[0][0] == 0
        assert spans[-1][1] == len(text)


# -- render -------------------------------------------------------------------------------


def _render(text: str, values: dict[str, Any]) -> Any:
    return render(
        parse_template(text),
        resolve_ref=lambda r: resolve(r, values),
        resolve_var=lambda v: values["secret" if v.secret else "vars"][v.name],
    )


@pytest.mark.parametrize("value", [1, 1.5, True, None, "s", {"a": [1, 2]}, [1, "x"], {}, []])
def test_single_value_keeps_its_type(value: Any) -> None:
    assert _render("{{ v }}", {"v": value}) == value
    assert type(_render("{{ v }}", {"v": value})) is type(value)
    assert _render("${V}", {"vars": {"V": value}}) == value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("s", "s"),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (1, "1"),
        (1.5, "1.5"),
        (1e16, "1e+16"),
        ({"a": [1, None, True], "é": "ü"}, '{"a":[1,null,true],"é":"ü"}'),
        ([], "[]"),
        (dt.date(2026, 1, 2), "2026-01-02"),
        (dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC), "2026-01-02T03:04:00+00:00"),
        ({"d": dt.date(2026, 1, 2)}, '{"d":"2026-01-02"}'),
    ],
)
def test_values_in_text(value: Any, text: str) -> None:
    assert value_to_text(value) == text
    assert _render("<{{ v }}>", {"v": value}) == f"<{text}>"


def test_render_mixed_and_secrets() -> None:
    values = {"a": {"n": 3}, "vars": {"P": "acme"}, "secret": {"T": "tok"}}
    assert _render("${P}/{{a.n}}?t=${secret:T}", values) == "acme/3?t=tok"
    assert _render("$${P} {{ '{{' }}", values) == "${P} {{"
    assert _render("", values) == ""
    assert _render(" {{a.n}}", values) == " 3"


def test_render_propagates_resolution_errors() -> None:
    with pytest.raises(ReferenceResolutionError, match="'m' not found in a"):
        _render("x {{ a.m }}", {"a": {"n": 1}})
