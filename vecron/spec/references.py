"""References, variables and templates: the ``{{ … }}`` and ``${…}`` parts of job files.

Syntax (DESIGN.md, "Job definition"):

* ``{{ <reference> }}``: a reference into the Job Context; whitespace inside the braces
  is allowed. A reference is a root name (``[A-Za-z_][A-Za-z0-9_]*``; which roots exist
  is checked by the validator) and a path of ``.key`` (``[A-Za-z_][A-Za-z0-9_-]*``, so
  step ids like ``fetch-users`` work), ``[0]``, ``[-1]``, ``['any key']`` /
  ``["any key"]`` and ``[*]`` (``.*`` is accepted too). A dotted dunder key such as
  ``.__class__`` is refused (it reads as attribute access); write ``['__class__']``.
* Quoted strings take the backslash escapes ``\\\\ \\' \\" \\` \\n \\r \\t \\uXXXX``.
* ``${NAME}`` is a variable and ``${secret:NAME}`` a secret.
* Escapes: ``$${`` is a literal ``${``; ``{{ 'text' }}`` is literal text, so a literal
  ``{{`` is written ``{{ '{{' }}`` (as in Jinja); ``${{`` is a literal ``$`` followed by
  a reference (``"${{steps.a.output.total}}"`` renders ``$42``). Any other ``$``, ``{``
  or ``}}`` is plain text. An unclosed ``{{`` or ``${`` is an error.
* A template is a *single value* when it is exactly one ``{{…}}`` or one ``${…}`` with
  nothing around it, not even whitespace; it then renders to the value with its JSON
  type. Otherwise values are rendered as text (see :func:`value_to_text`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vecron.errors import ReferenceResolutionError, ReferenceSyntaxError

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_DUNDER = re.compile(r"__\w+__")
_INDEX = re.compile(r"-?[0-9]+")
_TOKEN = re.compile(r"\w+|\S|\s")
_MARK = re.compile(r"\$\$\{|\$\{|\{\{")
_PLAIN = {"'": re.compile(r"[^'\\]*"), '"': re.compile(r'[^"\\]*'), "`": re.compile(r"[^`\\]*")}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "`": "`", "n": "\n", "r": "\r", "t": "\t"}
_QUOTE_NEEDED = re.compile(r"[\\'\"`\x00-\x1f\x7f]")
# jsonpath-ng reads these words as operators, so keys named like them must be quoted.
_JSONPATH_RESERVED = frozenset({"where", "wherenot"})


def skip_space(text: str, pos: int) -> int:
    """The offset of the first non-whitespace character at or after ``pos``."""
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def found(text: str, pos: int) -> str:
    """Describe the token at ``pos`` for an error message ("'x'" or "end of text")."""
    m = _TOKEN.match(text, pos)
    return repr(m.group()) if m else "end of text"


def scan_string(text: str, pos: int) -> tuple[str, int]:
    """Read the quoted string starting at ``text[pos]`` (a quote); return it and the end."""
    quote, plain, i = text[pos], _PLAIN[text[pos]], pos + 1
    out: list[str] = []
    while True:
        m = plain.match(text, i)
        assert m is not None  # the pattern matches the empty string
        out.append(m.group())
        i = m.end()
        if i >= len(text) or (i + 1 == len(text) and text[i] == "\\"):
            raise ReferenceSyntaxError(
                f"unterminated string: expected {quote} to close it", offset=pos
            )
        if text[i] == quote:
            return "".join(out), i + 1
        esc = text[i + 1 : i + 2]  # text[i] is a backslash
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 2
        elif esc == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", text[i + 2 : i + 6]):
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
        else:
            bad = "\\" + esc
            raise ReferenceSyntaxError(
                f"unknown escape {bad!r} in string: expected one of "
                r"\\ \' \" \` \n \r \t \uXXXX",
                offset=i,
            )


def quote_string(value: str, quote: str = "'") -> str:
    """Quote ``value`` so that :func:`scan_string` reads it back unchanged."""

    def esc(m: re.Match[str]) -> str:
        c = m.group()
        if c in "\\'\"`":
            return "\\" + c if c in ("\\", quote) else c
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\u{ord(c):04x}")

    return quote + _QUOTE_NEEDED.sub(esc, value) + quote


def _is_plain_key(name: str) -> bool:
    return _KEY.fullmatch(name) is not None and _DUNDER.fullmatch(name) is None


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """A mapping key in a reference path (``.name`` or ``['any name']``)."""

    name: str

    def __str__(self) -> str:
        return f".{self.name}" if _is_plain_key(self.name) else f"[{quote_string(self.name)}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class Index:
    """A list index in a reference path; negative counts from the end (``[-1]``)."""

    index: int

    def __str__(self) -> str:
        return f"[{self.index}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class Wildcard:
    """``[*]``: every item of a list, or every value of a mapping."""

    def __str__(self) -> str:
        return "[*]"


Segment = Key | Index | Wildcard


@dataclass(frozen=True, slots=True, kw_only=True)
class Reference:
    """A root name and a path into the Job Context, e.g. ``steps.fetch.output.rows[0]``."""

    root: str
    path: tuple[Segment, ...] = ()

    def __post_init__(self) -> None:
        if IDENT.fullmatch(self.root) is None:
            raise ValueError(f"reference root {self.root!r} is not a name")

    def __str__(self) -> str:
        return self.root + "".join(str(s) for s in self.path)

    @property
    def step_id(self) -> str | None:
        """The step id for ``steps.<id>…`` references, else None."""
        if self.root == "steps" and self.path and isinstance(self.path[0], Key):
            return self.path[0].name
        return None

    def to_jsonpath(self) -> str:
        """This reference as a jsonpath-ng expression from the context root (``$.steps.a``).

        A ``[*]`` becomes jsonpath-ng's ``[*]``, which agrees with :func:`resolve` on
        lists (on a mapping jsonpath-ng yields the mapping itself). A key named ``*``
        cannot be written in jsonpath-ng and raises ValueError.
        """
        out = ["$"]
        for seg in (Key(name=self.root), *self.path):
            if isinstance(seg, Key):
                if seg.name == "*":
                    raise ValueError(f"{self}: jsonpath-ng cannot address a key named '*'")
                if _KEY.fullmatch(seg.name) and seg.name not in _JSONPATH_RESERVED:
                    out.append(f".{seg.name}")
                else:  # jsonpath-ng keeps the character after a backslash, so escape just two
                    out.append("['" + seg.name.replace("\\", "\\\\").replace("'", "\\'") + "']")
            else:
                out.append(str(seg))
        return "".join(out)


def scan_reference(text: str, pos: int) -> tuple[Reference, int]:
    """Read a reference starting at ``text[pos]``; return it and the offset after it."""
    m = IDENT.match(text, pos)
    if m is None:
        raise ReferenceSyntaxError(
            f"expected a reference such as steps.<id>.output, found {found(text, pos)}",
            offset=pos,
        )
    root, i = m.group(), m.end()
    path: list[Segment] = []
    while i < len(text):
        c = text[i]
        if c == ".":
            if text.startswith("*", i + 1):
                path.append(Wildcard())
                i += 2
                continue
            m = _KEY.match(text, i + 1)
            if m is None:
                raise ReferenceSyntaxError(
                    f"expected a key name after '.', found {found(text, i + 1)}", offset=i + 1
                )
            if _DUNDER.fullmatch(m.group()):
                raise ReferenceSyntaxError(
                    f"{m.group()!r} reads as attribute access, which is not allowed; "
                    f"write [{quote_string(m.group())}] for a key with that name",
                    offset=i + 1,
                )
            path.append(Key(name=m.group()))
            i = m.end()
        elif c == "[":
            j = skip_space(text, i + 1)
            seg: Segment
            if text.startswith("*", j):
                seg, j = Wildcard(), j + 1
            elif text[j : j + 1] in ("'", '"'):
                name, j = scan_string(text, j)
                seg = Key(name=name)
            elif m := _INDEX.match(text, j):
                seg, j = Index(index=int(m.group())), m.end()
            else:
                raise ReferenceSyntaxError(
                    f"expected an index, a quoted key or * after '[', found {found(text, j)}",
                    offset=j,
                )
            j = skip_space(text, j)
            if not text.startswith("]", j):
                raise ReferenceSyntaxError(
                    f"expected ']' to close '[', found {found(text, j)}", offset=j
                )
            path.append(seg)
            i = j + 1
        else:
            break
    return Reference(root=root, path=tuple(path)), i


def parse_reference(text: str) -> Reference:
    """Parse a bare reference (surrounding whitespace allowed); ReferenceSyntaxError if bad."""
    start = skip_space(text, 0)
    ref, end = scan_reference(text, start)
    end = skip_space(text, end)
    if end != len(text):
        raise ReferenceSyntaxError(
            f"unexpected {found(text, end)} after reference {str(ref)!r}", offset=end
        )
    return ref


@dataclass(frozen=True, slots=True, kw_only=True)
class Variable:
    """``${NAME}`` (a variable) or ``${secret:NAME}`` (a secret)."""

    name: str
    secret: bool = False

    def __post_init__(self) -> None:
        if IDENT.fullmatch(self.name) is None:
            raise ValueError(f"variable name {self.name!r} is not a name")

    def __str__(self) -> str:
        return f"${{secret:{self.name}}}" if self.secret else f"${{{self.name}}}"


# Offsets are where a part was found in the parsed text. They take no part in equality,
# so parse_template(str(t)) == t although the canonical text places parts elsewhere.
@dataclass(frozen=True, slots=True, kw_only=True)
class Literal:
    """Plain text of a template (escapes already undone)."""

    text: str
    start: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferencePart:
    """A ``{{ reference }}`` in a template, at ``text[start:end]``."""

    reference: Reference
    start: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class VariablePart:
    """A ``${NAME}`` or ``${secret:NAME}`` in a template, at ``text[start:end]``."""

    variable: Variable
    start: int = field(default=0, compare=False)
    end: int = field(default=0, compare=False)


Part = Literal | ReferencePart | VariablePart


def _literal_text(text: str, following: Part | None) -> str:
    out, i = [], 0
    while i < len(text):
        if text.startswith("${", i):
            out.append("$${")
            i += 2
        elif text.startswith("{{", i):
            out.append("{{ '{{' }}")
            i += 2
        else:
            out.append(text[i])
            i += 1
    # A trailing '$' before ${X}, or '{' before {{x}}, would fuse with the next part.
    last = out[-1] if out else ""
    if (last == "$" and isinstance(following, VariablePart)) or (
        last == "{" and isinstance(following, ReferencePart)
    ):
        out[-1] = f"{{{{ '{last}' }}}}"
    return "".join(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """A parsed string: literal text, references and variables, in order.

    :func:`parse_template` yields no empty literal and no two literals in a row.
    """

    parts: tuple[Part, ...] = ()

    def __str__(self) -> str:
        out = []
        for i, part in enumerate(self.parts):
            if isinstance(part, Literal):
                following = self.parts[i + 1] if i + 1 < len(self.parts) else None
                out.append(_literal_text(part.text, following))
            elif isinstance(part, ReferencePart):
                out.append(f"{{{{{part.reference}}}}}")
            else:
                out.append(str(part.variable))
        return "".join(out)

    @property
    def is_single_value(self) -> bool:
        """True when the text is exactly one ``{{…}}`` or ``${…}``: it keeps its JSON type."""
        return len(self.parts) == 1 and not isinstance(self.parts[0], Literal)

    @property
    def references(self) -> tuple[Reference, ...]:
        """Every reference, in order."""
        return tuple(p.reference for p in self.parts if isinstance(p, ReferencePart))

    @property
    def variables(self) -> tuple[Variable, ...]:
        """Every variable and secret, in order."""
        return tuple(p.variable for p in self.parts if isinstance(p, VariablePart))


def has_template(text: str) -> bool:
    """Cheap pre-check: could ``text`` hold a reference or a variable?"""
    return "{{" in text or "${" in text


def _scan_braces(text: str, start: int) -> tuple[str | Reference, int]:
    """Read ``{{ reference }}`` or ``{{ 'literal' }}`` at ``start``; return it and the end."""
    try:
        i = skip_space(text, start + 2)
        item: str | Reference
        if text[i : i + 1] in ("'", '"'):
            item, i = scan_string(text, i)
        elif text.startswith("}}", i):
            raise ReferenceSyntaxError("expected a reference inside '{{ }}', found '}}'", offset=i)
        else:
            item, i = scan_reference(text, i)
        i = skip_space(text, i)
        if not text.startswith("}}", i):
            raise ReferenceSyntaxError(
                f"expected '}}}}' to close it, found {found(text, i)}", offset=i
            )
    except ReferenceSyntaxError as e:
        # The inner message points at a token; say which '{{' it belongs to.
        raise ReferenceSyntaxError(
            f"reference at offset {start}: {e.message}", offset=e.offset
        ) from None
    return item, i + 2


def parse_template(text: str) -> Template:
    """Parse a string of a job file; ReferenceSyntaxError (with offset) if it is malformed."""
    if not has_template(text):
        return Template(parts=(Literal(text=text, start=0, end=len(text)),) if text else ())
    parts: list[Part] = []
    pieces: list[str] = []  # literal text not yet flushed, which began at lit_start
    lit_start = pos = 0

    def flush(end: int) -> None:
        if pieces and (lit := "".join(pieces)):
            parts.append(Literal(text=lit, start=lit_start, end=end))
        pieces.clear()

    while (m := _MARK.search(text, pos)) is not None:
        start = m.start()
        pieces.append(text[pos:start])
        mark = m.group()
        if mark == "$${":
            pieces.append("${")
            pos = m.end()
        elif mark == "${" and text.startswith("{", start + 2):
            pieces.append("$")  # '${{' is a '$' followed by a reference
            pos = start + 1
        elif mark == "${":
            i, secret = start + 2, text.startswith("secret:", start + 2)
            i += 7 if secret else 0
            name = IDENT.match(text, i)
            if name is None:
                what = "a secret name after '${secret:'" if secret else "a variable name after '${'"
                raise ReferenceSyntaxError(f"expected {what}, found {found(text, i)}", offset=i)
            if not text.startswith("}", name.end()):
                raise ReferenceSyntaxError(
                    f"expected '}}' to close '${{' at offset {start}, "
                    f"found {found(text, name.end())}",
                    offset=name.end(),
                )
            flush(start)
            variable = Variable(name=name.group(), secret=secret)
            parts.append(VariablePart(variable=variable, start=start, end=name.end() + 1))
            pos = lit_start = name.end() + 1
        else:
            item, pos = _scan_braces(text, start)
            if isinstance(item, str):
                pieces.append(item)
            else:
                flush(start)
                parts.append(ReferencePart(reference=item, start=start, end=pos))
                lit_start = pos
    pieces.append(text[pos:])
    flush(len(text))
    return Template(parts=tuple(parts))


_JSON_TYPES = (
    (type(None), "null"),
    (bool, "a boolean"),
    (int | float, "a number"),
    (str, "a string"),
    (Mapping, "an object"),
    (Sequence, "an array"),
)


def _json_type(value: Any) -> str:
    kind = next((name for t, name in _JSON_TYPES if isinstance(value, t)), None)
    return kind or f"a {type(value).__name__}"


def _is_array(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def _children(value: Any, seg: Segment) -> list[Any]:
    """What ``seg`` selects in ``value``; nothing when it does not match (JSONPath rules)."""
    if isinstance(seg, Wildcard):
        if isinstance(value, Mapping):
            return list(value.values())
        return list(value) if _is_array(value) else []
    if isinstance(seg, Key):
        return [value[seg.name]] if isinstance(value, Mapping) and seg.name in value else []
    if _is_array(value) and -len(value) <= seg.index < len(value):
        return [value[seg.index]]
    return []


def _missing(ref: Reference, depth: int, value: Any, seg: Segment) -> ReferenceResolutionError:
    where = str(Reference(root=ref.root, path=ref.path[:depth]))
    if isinstance(seg, Wildcard):
        return ReferenceResolutionError(
            f"{ref}: cannot expand [*] over {where}, which is "
            f"{_json_type(value)}, not an array or an object"
        )
    if isinstance(seg, Key):
        if not isinstance(value, Mapping):
            what = f"{where}, which is {_json_type(value)}, not an object"
        elif not value:
            what = f"{where} (no keys)"
        else:
            keys = [str(k) for k in list(value)[:20]] + (["…"] if len(value) > 20 else [])
            what = f"{where} (keys: {', '.join(keys)})"
        return ReferenceResolutionError(f"{ref}: {seg.name!r} not found in {what}")
    if _is_array(value):
        return ReferenceResolutionError(
            f"{ref}: index {seg.index} out of range in {where} ({len(value)} items)"
        )
    return ReferenceResolutionError(
        f"{ref}: index {seg.index} not found in {where}, which is {_json_type(value)}, not an array"
    )


def resolve(ref: Reference, context: Mapping[str, Any]) -> Any:
    """Walk ``ref`` through ``context`` (the Job Context: nested mappings and lists).

    Without a wildcard the value is returned. From the first ``[*]`` on the result is a
    list of every match, flattened, and as in JSONPath items lacking the rest of the path
    are skipped. A missing root, key or index before that raises
    ReferenceResolutionError naming the reference and the first missing segment.
    """
    if ref.root not in context:
        keys = ", ".join(str(k) for k in context) or "none"
        raise ReferenceResolutionError(
            f"{ref}: {ref.root!r} not found in the context (keys: {keys})"
        )
    value = context[ref.root]
    for depth, seg in enumerate(ref.path):
        if isinstance(seg, Wildcard) and not (isinstance(value, Mapping) or _is_array(value)):
            raise _missing(ref, depth, value, seg)
        matches = _children(value, seg)
        if isinstance(seg, Wildcard):
            for later in ref.path[depth + 1 :]:
                matches = [child for match in matches for child in _children(match, later)]
            return matches
        if not matches:
            raise _missing(ref, depth, value, seg)
        value = matches[0]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def value_to_text(value: Any) -> str:
    """How a value reads inside a longer string.

    Strings as they are, None as "" (as a missing value would), booleans as
    ``true``/``false``, numbers, objects and arrays as compact JSON, dates in ISO 8601.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def render(
    template: Template,
    *,
    resolve_ref: Callable[[Reference], Any],
    resolve_var: Callable[[Variable], Any],
) -> Any:
    """Fill in ``template``: a single-value template gives the value itself, any JSON type;
    otherwise a string, each value rendered by :func:`value_to_text`."""

    def value(part: ReferencePart | VariablePart) -> Any:
        if isinstance(part, ReferencePart):
            return resolve_ref(part.reference)
        return resolve_var(part.variable)

    if template.is_single_value:
        (part,) = template.parts
        assert not isinstance(part, Literal)
        return value(part)
    return "".join(
        p.text if isinstance(p, Literal) else value_to_text(value(p)) for p in template.parts
    )
