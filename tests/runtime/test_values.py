"""Rendering step configs: types kept, variables, secrets tracked and scrubbed, SQL bound."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vecron.errors import ReferenceResolutionError
from vecron.runtime.values import (
    ChainedSecrets,
    EnvironmentSecrets,
    MappingSecrets,
    Paramstyle,
    ValueResolver,
)

CONTEXT = {
    "steps": {"fetch": {"output": {"body": {"id": 42, "tags": ["a", "b"], "name": "Đức"}}}},
    "webhook": {"payload": {"kind": "order", "note": "x'); DROP TABLE t; --"}},
    "execution": {"id": "e-1", "date": "2026-11-28"},
}


def resolver(**variables: Any) -> ValueResolver:
    return ValueResolver(
        context=CONTEXT,
        variables={"REGION": "eu", "LIMIT": 10, "DB_PASS": "pa55word", **variables},
        secrets=ChainedSecrets(
            (
                MappingSecrets({"TOKEN": "tok-123456"}),
                EnvironmentSecrets({"VECRON_SECRET_ENVY": "from-env"}),
            )
        ),
        secret_variables=frozenset({"DB_PASS"}),
    )


def test_whole_value_references_keep_their_type() -> None:
    values = resolver()
    assert values.render("{{steps.fetch.output.body.id}}") == 42
    assert values.render("{{steps.fetch.output.body.tags}}") == ["a", "b"]
    assert values.render("${LIMIT}") == 10
    assert values.render("id={{steps.fetch.output.body.id}}&r=${REGION}") == "id=42&r=eu"
    assert values.render({"a": ["{{execution.id}}", 1, None], "b": "plain"}) == {
        "a": ["e-1", 1, None],
        "b": "plain",
    }
    assert values.render_text("{{steps.fetch.output.body.tags}}") == '["a","b"]'


def test_missing_paths_and_variables_name_what_is_missing() -> None:
    values = resolver()
    with pytest.raises(ReferenceResolutionError, match=r"steps\.fetch\.output\.body\.nope"):
        values.render("{{steps.fetch.output.body.nope}}")
    with pytest.raises(ReferenceResolutionError, match=r"\$\{MISSING\}"):
        values.render("${MISSING}")
    with pytest.raises(ReferenceResolutionError, match="secret 'NOPE' is not set"):
        values.render("${secret:NOPE}")


def test_secrets_are_tracked_and_scrubbed() -> None:
    values = resolver()
    assert values.render("Bearer ${secret:TOKEN}") == "Bearer tok-123456"
    assert values.render("${secret:ENVY}") == "from-env"
    assert values.render("${DB_PASS}") == "pa55word"
    assert values.render("${REGION}") == "eu"
    assert values.secrets_used == {"tok-123456", "from-env", "pa55word"}
    message = "401 for Bearer tok-123456 (password pa55word, region eu)"
    assert values.scrub(message) == "401 for Bearer ****** (password ******, region eu)"


@pytest.mark.parametrize(
    ("style", "sql", "params"),
    [
        ("qmark", "SELECT * FROM t WHERE id = ? AND r = ? AND n LIKE 'a%'", [42, "eu"]),
        ("format", "SELECT * FROM t WHERE id = %s AND r = %s AND n LIKE 'a%%'", [42, "eu"]),
        ("numeric", "SELECT * FROM t WHERE id = :1 AND r = :2 AND n LIKE 'a%'", [42, "eu"]),
        (
            "named",
            "SELECT * FROM t WHERE id = :p0 AND r = :p1 AND n LIKE 'a%'",
            {"p0": 42, "p1": "eu"},
        ),
        (
            "pyformat",
            "SELECT * FROM t WHERE id = %(p0)s AND r = %(p1)s AND n LIKE 'a%%'",
            {"p0": 42, "p1": "eu"},
        ),
    ],
)
def test_sql_binds_every_reference_and_variable(style: Paramstyle, sql: str, params: Any) -> None:
    query = (
        "SELECT * FROM t WHERE id = {{steps.fetch.output.body.id}} AND r = ${REGION} "
        "AND n LIKE 'a%'"
    )
    assert resolver().sql(query, style) == (sql, params)


def test_injection_attempts_arrive_as_values() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (note TEXT)")
    statement, params = resolver().sql(
        "INSERT INTO t (note) VALUES ({{webhook.payload.note}})", "qmark"
    )
    connection.execute(statement, params)
    assert connection.execute("SELECT note FROM t").fetchall() == [("x'); DROP TABLE t; --",)]


@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))))
def test_any_text_round_trips_through_sqlite_as_a_bound_value(text: str) -> None:
    values = ValueResolver(
        context={"webhook": {"payload": {"v": text}}}, variables={}, secrets=MappingSecrets({})
    )
    statement, params = values.sql("SELECT {{webhook.payload.v}} || ''", "qmark")
    connection = sqlite3.connect(":memory:")
    assert connection.execute(statement, params).fetchone() == (text,)
