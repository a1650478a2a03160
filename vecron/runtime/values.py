"""Filling in a step's config at run time: references, variables and secrets.

A :class:`ValueResolver` belongs to one step of one execution. It renders every
``{{…}}`` reference from the Job Context and every ``${NAME}`` / ``${secret:NAME}``,
and it remembers each secret value it handed out, so that the worker can scrub them
from errors, logs and outputs (:meth:`ValueResolver.scrub`). In SQL, references and
variables never become text: :meth:`ValueResolver.sql` turns them into bound
parameters in the driver's own placeholder style.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from vecron.errors import ReferenceResolutionError
from vecron.spec.references import (
    Literal as TextPart,
)
from vecron.spec.references import (
    Reference,
    ReferencePart,
    Template,
    Variable,
    has_template,
    parse_template,
    render,
    resolve,
)

MASK = "******"
SECRET_ENV_PREFIX = "VECRON_SECRET_"
# A ``${secret:NAME}`` inside a variable's value (not the escaped ``$${…}``).
_SECRET_IN_VALUE = re.compile(r"(?<!\$)\$\{secret:([A-Za-z_][A-Za-z0-9_]*)\}")
Paramstyle = Literal["qmark", "format", "pyformat", "numeric", "named"]


class SecretSource(Protocol):
    """Where ``${secret:NAME}`` values come from. ``get`` returns None for an unknown name."""

    def get(self, name: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class MappingSecrets:
    """Secrets from a mapping (the decrypted secret variables of the database)."""

    values: Mapping[str, str]

    def get(self, name: str) -> str | None:
        return self.values.get(name)


@dataclass(frozen=True, slots=True)
class EnvironmentSecrets:
    """Secrets from ``VECRON_SECRET_<NAME>`` environment variables."""

    environ: Mapping[str, str] | None = None

    def get(self, name: str) -> str | None:
        env = os.environ if self.environ is None else self.environ
        return env.get(SECRET_ENV_PREFIX + name)


@dataclass(frozen=True, slots=True)
class ChainedSecrets:
    """The first source that knows a name wins."""

    sources: tuple[SecretSource, ...]

    def get(self, name: str) -> str | None:
        for source in self.sources:
            value = source.get(name)
            if value is not None:
                return value
        return None


class ValueResolver:
    """Renders templates for one step; remembers the secrets it resolved.

    ``context`` is the Job Context so far; ``variables`` the plain variables (the job's
    over the global ones); ``secret_variables`` the names among them that are secret
    (their values are scrubbed like secrets); ``secrets`` the ``${secret:…}`` source.
    """

    def __init__(
        self,
        *,
        context: Mapping[str, Any],
        variables: Mapping[str, Any],
        secrets: SecretSource,
        secret_variables: frozenset[str] = frozenset(),
    ) -> None:
        self._context = context
        self._variables = variables
        self._secrets = secrets
        self._secret_variables = secret_variables
        self._used: set[str] = set()

    @property
    def secrets_used(self) -> frozenset[str]:
        """Every secret value this resolver has handed out (plaintext: keep it private)."""
        return frozenset(self._used)

    def reference(self, ref: Reference) -> Any:
        """The value at ``ref`` in the context; ReferenceResolutionError names what is missing."""
        return resolve(ref, self._context)

    def variable(self, var: Variable) -> Any:
        if var.secret:
            value = self._secrets.get(var.name)
            if value is None:
                raise ReferenceResolutionError(
                    f"secret {var.name!r} is not set (vecron vars set --secret {var.name}, "
                    f"or the environment variable {SECRET_ENV_PREFIX}{var.name})"
                )
            self._remember(value)
            return value
        if var.name not in self._variables:
            raise ReferenceResolutionError(
                f"variable ${{{var.name}}} is not set (in the job's variables, "
                f"variables.yaml or vecron vars)"
            )
        value = self._variables[var.name]
        if var.name in self._secret_variables and isinstance(value, str):
            self._remember(value)
        elif isinstance(value, str) and "${secret:" in value:
            # A variable may name a secret (variables.yaml, an imported job's variables):
            # its secrets are filled in, nothing else in it is (no nesting of variables).
            value = _SECRET_IN_VALUE.sub(
                lambda match: str(self.variable(Variable(name=match[1], secret=True))), value
            )
        return value

    def render(self, value: Any) -> Any:
        """``value`` with every template in it filled in (dicts and lists walked).

        A string that is exactly one reference or variable keeps the JSON type of
        what it refers to; any other templated string becomes text.
        """
        if isinstance(value, str):
            if not has_template(value):
                return value
            return render(
                parse_template(value), resolve_ref=self.reference, resolve_var=self.variable
            )
        if isinstance(value, Mapping):
            return {key: self.render(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.render(item) for item in value]
        return value

    def render_text(self, value: str) -> str:
        """``value`` rendered, always as text (URLs, paths, headers)."""
        rendered = self.render(value)
        if isinstance(rendered, str):
            return rendered
        from vecron.spec.references import value_to_text

        return value_to_text(rendered)

    def sql(self, query: str, paramstyle: Paramstyle) -> tuple[str, list[Any] | dict[str, Any]]:
        """``query`` with each reference and variable replaced by a bound parameter.

        Literal text is escaped for the paramstyle (``%`` doubles for ``format`` and
        ``pyformat``), so a ``LIKE 'a%'`` keeps working. Returns the statement and its
        parameters: a dict for ``named``/``pyformat``, a list otherwise.
        """
        template = (
            parse_template(query)
            if has_template(query)
            else Template(parts=(TextPart(text=query),))
        )
        pieces: list[str] = []
        positional: list[Any] = []
        named: dict[str, Any] = {}
        for part in template.parts:
            if isinstance(part, TextPart):
                text = part.text
                if paramstyle in ("format", "pyformat"):
                    text = text.replace("%", "%%")
                pieces.append(text)
                continue
            if isinstance(part, ReferencePart):
                value = self.reference(part.reference)
            else:
                value = self.variable(part.variable)
            index = len(positional) + len(named)
            name = f"p{index}"
            if paramstyle == "qmark":
                pieces.append("?")
            elif paramstyle == "format":
                pieces.append("%s")
            elif paramstyle == "numeric":
                pieces.append(f":{index + 1}")
            elif paramstyle == "named":
                pieces.append(f":{name}")
            else:
                pieces.append(f"%({name})s")
            if paramstyle in ("named", "pyformat"):
                named[name] = value
            else:
                positional.append(value)
        return "".join(pieces), named if paramstyle in ("named", "pyformat") else positional

    def scrub(self, text: str) -> str:
        """``text`` with every secret this resolver handed out replaced by ``******``."""
        for secret in sorted(self._used, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def _remember(self, value: str) -> None:
        if len(value) >= 4:  # scrubbing a one-letter "secret" would garble every message
            self._used.add(value)
