"""API tokens: their shape, their hash, and the permissions of each role."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vecron.webhook.tokens import (
    ROLE_PERMISSIONS,
    TOKEN_LENGTH,
    Permission,
    Role,
    allows,
    hash_token,
    looks_like_token,
    new_token,
    permissions_for,
)

ALL = {"job:read", "job:write", "job:execute", "job:delete", "execution:read"}


def test_roles_have_exactly_their_permissions() -> None:
    assert permissions_for("viewer") == {"job:read", "execution:read"}
    assert permissions_for(Role.OPERATOR) == {"job:read", "execution:read", "job:execute"}
    assert permissions_for("admin") == ALL
    assert {p.value for p in Permission} == ALL
    assert set(ROLE_PERMISSIONS) == set(Role)


def test_each_role_can_do_all_that_the_one_below_can() -> None:
    assert permissions_for("viewer") < permissions_for("operator") < permissions_for("admin")


def test_a_viewer_cannot_run_or_change_anything() -> None:
    for permission in ("job:write", "job:execute", "job:delete"):
        assert not allows("viewer", permission)
    assert not allows("operator", "job:write")
    assert not allows("operator", "job:delete")
    assert allows("operator", Permission.JOB_EXECUTE)
    assert all(allows("admin", p) for p in ALL)


def test_unknown_roles_and_permissions_are_refused() -> None:
    with pytest.raises(
        ValueError, match=r"unknown role 'root' \(use one of viewer, operator, admin\)"
    ):
        permissions_for("root")
    with pytest.raises(ValueError, match="unknown role"):
        permissions_for("Admin")  # role names are exact
    assert not allows("admin", "job:*")
    assert not allows("admin", "JOB:READ")


def test_the_permission_sets_cannot_be_changed() -> None:
    with pytest.raises(TypeError):
        ROLE_PERMISSIONS[Role.VIEWER] = frozenset(Permission)  # type: ignore[index]
    with pytest.raises(AttributeError):
        permissions_for("viewer").add(Permission.JOB_DELETE)  # type: ignore[attr-defined]


def test_new_tokens_are_prefixed_random_and_url_safe() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert re.fullmatch(r"vcr_[A-Za-z0-9_-]{43}", token)
        assert len(token) == TOKEN_LENGTH
        assert looks_like_token(token)


def test_a_token_is_stored_as_its_sha256() -> None:
    token = new_token()
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hash_token(token))
    assert token not in hash_token(token)
    assert hash_token(token) == hash_token(token)
    assert hash_token(token) != hash_token(token[:-1] + ("A" if token[-1] != "A" else "B"))


@given(st.text(max_size=80))
def test_only_token_shaped_values_look_like_tokens(value: str) -> None:
    expected = re.fullmatch(r"vcr_[A-Za-z0-9_-]{43}", value) is not None
    assert looks_like_token(value) is expected
    assert not looks_like_token("vcr_" + "é" * 43)
    assert not looks_like_token("ghp_" + "a" * 43)
