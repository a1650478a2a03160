"""Which values of a job definition are secrets.

One place decides it, for the validator (a literal secret is a warning) and for the
exporter (every secret is redacted). A value is sensitive by its key (``password``,
``token``, ``client_secret``, ``private_key``, ``passphrase``, a webhook ``secret``,
…), by being the password part of a connection string or URL, or by being a
credential header such as ``Authorization``. The exporter adds keys of its own with a
``key_pattern`` (``vecron export --redact-pattern``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SENSITIVE_KEYS = frozenset(
    {
        "password",
        "passphrase",
        "token",
        "client_secret",
        "private_key",
        "secret",
        "api_key",
        "apikey",
        "access_key",
        "secret_key",
        "access_token",
        "refresh_token",
    }
)
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-auth-token"}
)
#: Words that make a variable name look like it holds a secret (``DB_PASSWORD``,
#: ``apiKey``, ``GITHUB_TOKEN``); matched as whole words, so ``BYPASS`` is not one.
SENSITIVE_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "credential",
        "credentials",
        "privatekey",
    }
)
_NAME_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def sensitive_name(name: str) -> bool:
    """Whether a variable or key name looks like it holds a secret."""
    words = [w.lower() for w in _NAME_WORDS.findall(name)]
    pairs = {a + b for a, b in itertools.pairwise(words)}
    return any(w in SENSITIVE_WORDS for w in words) or bool(pairs & SENSITIVE_WORDS)


_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:(?P<pw>[^@/\s]+)@")
_KV_PASSWORD = re.compile(r"(?i)(?:^|[\s;])(?:password|pwd)\s*=\s*(?P<pw>'[^']*'|[^\s;]+)")
_WHOLE_VARIABLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_PLACEHOLDER = re.compile(r"\$\{[^}]*\}|\{\{.*?\}\}")


@dataclass(frozen=True, slots=True, kw_only=True)
class SensitiveValue:
    """A secret inside a definition: ``value[start:end]`` is the secret part."""

    loc: tuple[str | int, ...]
    value: str
    start: int
    end: int
    reason: str

    @property
    def secret(self) -> str:
        return self.value[self.start : self.end]

    @property
    def is_literal(self) -> bool:
        """True when the secret is written out rather than as a ``${…}`` placeholder."""
        return _PLACEHOLDER.search(self.secret) is None


def embedded_password(text: str) -> tuple[int, int] | None:
    """The span of a password inside a URL or a key=value connection string."""
    match = _URL_PASSWORD.match(text) or _KV_PASSWORD.search(text)
    if match is None:
        return None
    return match.span("pw")


def find_sensitive(
    data: Any,
    loc: tuple[str | int, ...] = (),
    *,
    key_pattern: re.Pattern[str] | None = None,
    numbers: bool = False,
) -> Iterator[SensitiveValue]:
    """Every sensitive string in ``data`` (a job document as plain data).

    ``key_pattern`` makes every string under a key it matches (``search``: a field, a
    header or a variable name) sensitive as well. With ``numbers``, a number under a
    sensitive key (``DB_PASSWORD: 1234``) is one too, with ``value`` its text.
    """
    if isinstance(data, dict):
        in_headers = bool(loc) and loc[-1] == "headers"
        in_variables = loc == ("variables",)
        for key, value in data.items():
            here = (*loc, key)
            if isinstance(value, str):
                found = _classify(
                    str(key),
                    value,
                    in_headers=in_headers,
                    in_vars=in_variables,
                    pattern=key_pattern,
                )
                if found is not None:
                    start, end, reason = found
                    yield SensitiveValue(loc=here, value=value, start=start, end=end, reason=reason)
            elif numbers and isinstance(value, int | float) and not isinstance(value, bool):
                text = str(value)
                found = _classify(
                    str(key),
                    text,
                    in_headers=in_headers,
                    in_vars=in_variables,
                    pattern=key_pattern,
                )
                if found is not None:
                    yield SensitiveValue(
                        loc=here, value=text, start=0, end=len(text), reason=found[2]
                    )
            else:
                yield from find_sensitive(value, here, key_pattern=key_pattern, numbers=numbers)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from find_sensitive(item, (*loc, index), key_pattern=key_pattern, numbers=numbers)


def _classify(
    key: str,
    value: str,
    *,
    in_headers: bool,
    in_vars: bool,
    pattern: re.Pattern[str] | None = None,
) -> tuple[int, int, str] | None:
    lowered = key.lower()
    if not value:
        return None
    if pattern is not None and pattern.search(key):
        return 0, len(value), f"{key} (matches the redaction pattern)"
    if in_headers and lowered in SENSITIVE_HEADERS:
        return 0, len(value), f"header {key}"
    if in_vars and sensitive_name(key):
        return 0, len(value), f"variable {key}"
    if not (in_headers or in_vars) and lowered in SENSITIVE_KEYS:
        return 0, len(value), key
    if lowered == "connection_string" and _WHOLE_VARIABLE.fullmatch(value):
        return 0, len(value), key  # a whole DSN from a variable: it carries the password
    span = embedded_password(value)
    if span is not None:
        return span[0], span[1], f"password in {key}"
    return None


MASKED = "(sensitive)"


def mask(value: Any, key: str = "") -> Any:
    """``value`` with every secret in it replaced by ``(sensitive)``, for display.

    ``key`` is the name the value sits under (a field, a header, a variable), which
    decides by itself for strings. Placeholders (``${secret:…}``) are shown as they are.
    """
    if isinstance(value, dict):
        wrapped = find_sensitive({key or "_": value})
        return _apply_masks(value, [(s.loc[1:], s) for s in wrapped])
    if isinstance(value, list):
        return [mask(item, key) for item in value]
    if isinstance(value, str):
        found = _classify(key, value, in_headers=False, in_vars=False)
        if found is None and (sensitive_name(key) or key.lower() in SENSITIVE_HEADERS):
            found = (0, len(value), key)
        if found is not None:
            start, end, _ = found
            secret = value[start:end]
            if _PLACEHOLDER.search(secret) is None:
                return value[:start] + MASKED + value[end:]
    return value


def _apply_masks(value: Any, found: list[tuple[tuple[str | int, ...], SensitiveValue]]) -> Any:
    import copy

    result = copy.deepcopy(value)
    for loc, secret in found:
        if not secret.is_literal or not loc:
            continue
        node = result
        for part in loc[:-1]:
            node = node[part]
        node[loc[-1]] = secret.value[: secret.start] + MASKED + secret.value[secret.end :]
    return result
