"""Loading job files: fast parsing, and source positions only when they are needed.

A job file is parsed with ruamel.yaml's C-accelerated safe loader (or :mod:`json`),
which keeps no positions and is about five times faster than the round-trip loader.
Only a file that has something to report is parsed a second time, with positions
(:class:`Positions`), so that a clean repository costs one fast parse per file.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.resolver import VersionedResolver

from vecron.errors import DocumentSyntaxError

Loc = tuple[str | int, ...]

_parsers = threading.local()  # ruamel's YAML objects are not thread-safe


class _Yaml12Resolver(VersionedResolver):
    """YAML 1.2 resolution without looking up the version for every scalar.

    The stock resolver asks for the document's version on each plain scalar, which
    is a third of the load time; documents with a ``%YAML`` directive use it.
    """

    @property
    def processing_version(self) -> tuple[int, int]:
        return (1, 2)


def _yaml(kind: str) -> YAML:
    parser: YAML | None = getattr(_parsers, kind, None)
    if parser is None:
        if kind == "fast":
            parser = YAML(typ="safe", pure=False)
            parser.Resolver = _Yaml12Resolver
        elif kind == "safe":
            parser = YAML(typ="safe", pure=False)
        else:
            parser = YAML(typ=kind)
        setattr(_parsers, kind, parser)
    return parser


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def load_text(text: str, *, json_file: bool = False) -> Any:
    """The data in ``text``: YAML 1.2, or JSON when ``json_file``.

    Raises :class:`DocumentSyntaxError` with the line and column of the problem,
    including duplicate keys, which both loaders would otherwise resolve silently.
    """
    if json_file:
        try:
            return json.loads(text, object_pairs_hook=_reject_duplicates)
        except json.JSONDecodeError as exc:
            raise DocumentSyntaxError(
                f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno
            ) from None
        except ValueError:
            # A duplicate key: the round-trip loader knows where it is.
            pass
    try:
        return _yaml("safe" if "%YAML" in text else "fast").load(text)
    except MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    except YAMLError as exc:
        raise DocumentSyntaxError(f"invalid YAML: {exc}", line=1, column=1) from None


def _syntax_error(exc: MarkedYAMLError) -> DocumentSyntaxError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem and "duplicate key" not in problem:
        problem = f"{problem} {exc.context}"
    line = mark.line + 1 if mark is not None else 1
    column = mark.column + 1 if mark is not None else 1
    return DocumentSyntaxError(f"invalid YAML: {problem}", line=line, column=column)


class Positions:
    """Where each node of one document is: 1-based line and column by location.

    A location is the path of keys and list indices from the document's root, as in
    pydantic's error ``loc``. Built from ruamel.yaml's round-trip loader, which also
    reads JSON.
    """

    def __init__(self, root: Any) -> None:
        self._root = root

    @classmethod
    def from_text(cls, text: str) -> Positions:
        try:
            return cls(_yaml("rt").load(text))
        except YAMLError:
            return cls(None)

    def locate(self, loc: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """The position of the deepest node on ``loc`` that exists.

        Scalars point at their value; mappings and lists at the key that holds them,
        which is the line a reader looks for. With ``key``, a mapping entry points at
        its key even when its value is a scalar (for unknown keys).
        """
        node = self._root
        position = (0, 0)
        for index, part in enumerate(loc):
            last = index == len(loc) - 1
            if isinstance(node, CommentedMap) and part in node:
                child = node[part]
                use_key = (key and last) or isinstance(child, CommentedMap | CommentedSeq)
                position = node.lc.key(part) if use_key else node.lc.value(part)
                node = child
            elif (
                isinstance(node, CommentedSeq)
                and isinstance(part, int)
                and -len(node) <= part < len(node)
            ):
                position = node.lc.item(part % len(node))
                node = node[part]
            elif isinstance(node, CommentedMap) and isinstance(part, str):
                continue  # a union tag such as 'http' in pydantic's loc: not a key
            else:
                break
        return position[0] + 1, position[1] + 1
