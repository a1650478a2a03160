"""Webhook signatures: both schemes, every refusal, and the rules that keep them safe."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from vecron.errors import SignatureRefused, VecronError
from vecron.webhook import signing
from vecron.webhook.signing import Scheme, sign, verify

NOW = 1_760_000_000
SECRET = "hook-secret-0123456789"
BODY = b'{"invoice": 42, "partner": "acme"}'

# GitHub's documented example ("Validating webhook deliveries", "Testing the webhook
# payload validation").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_PAYLOAD = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def refusal(
    headers: dict[str, str],
    body: bytes = BODY,
    secret: str = SECRET,
    schemes: tuple[Scheme, ...] = ("vecron",),
    now: float = NOW,
    **options: float,
) -> str:
    with pytest.raises(SignatureRefused) as caught:
        verify(headers, body, secret, schemes, now, **options)
    return caught.value.reason


def test_the_github_scheme_matches_githubs_documented_example() -> None:
    headers = sign(GITHUB_SECRET, GITHUB_PAYLOAD, scheme="github")
    assert headers == {"X-Hub-Signature-256": GITHUB_SIGNATURE}
    assert verify(headers, GITHUB_PAYLOAD, GITHUB_SECRET, ["github"], NOW) == "github"
    # As GitHub sends it: lower-case names through an ASGI server, no timestamp.
    raw = Headers(raw=[(b"x-hub-signature-256", GITHUB_SIGNATURE.encode())])
    assert verify(raw, GITHUB_PAYLOAD, GITHUB_SECRET, ["github"]) == "github"


def test_the_vecron_scheme_signs_timestamp_dot_body() -> None:
    headers = sign(SECRET, BODY, timestamp=NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256)
    assert headers == {
        "X-Vecron-Timestamp": str(NOW),
        "X-Vecron-Signature": "sha256=" + expected.hexdigest(),
    }
    assert verify(headers, BODY, SECRET, ["vecron"], NOW) == "vecron"


@given(
    secret=st.text(min_size=1, max_size=64),
    body=st.binary(max_size=2048),
    timestamp=st.integers(min_value=0, max_value=10**11),
    scheme=st.sampled_from(signing.SCHEMES),
)
def test_what_sign_makes_verify_accepts(
    secret: str, body: bytes, timestamp: int, scheme: Scheme
) -> None:
    headers = sign(secret, body, scheme=scheme, timestamp=timestamp)
    assert verify(headers, body, secret, signing.SCHEMES, timestamp) == scheme
    assert verify(headers, body, secret.encode(), signing.SCHEMES, timestamp) == scheme


@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_changed_byte_is_refused(body: bytes, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1 :]
    for scheme in signing.SCHEMES:
        headers = sign(SECRET, body, scheme=scheme, timestamp=NOW)
        assert refusal(headers, tampered, schemes=(scheme,)) == "bad signature"


@pytest.mark.parametrize(
    ("signature", "timestamp"),
    [
        ("x-vecron-signature", "x-vecron-timestamp"),
        ("X-VECRON-SIGNATURE", "X-VECRON-TIMESTAMP"),
        ("x-VeCrOn-SiGnAtUrE", "X-Vecron-timestamp"),
    ],
)
def test_header_names_are_case_insensitive(signature: str, timestamp: str) -> None:
    signed = sign(SECRET, BODY, timestamp=NOW)
    cased = {signature: signed["X-Vecron-Signature"], timestamp: signed["X-Vecron-Timestamp"]}
    assert verify(cased, BODY, SECRET, ["vecron"], NOW) == "vecron"
    raw = Headers(raw=[(k.lower().encode(), v.encode()) for k, v in signed.items()])
    assert verify(raw, BODY, SECRET, ["vecron"], NOW) == "vecron"


def test_an_unsigned_request_is_refused() -> None:
    assert refusal({}) == "missing signature"
    assert refusal({"Content-Type": "application/json"}) == "missing signature"
    assert refusal({"X-Vecron-Timestamp": str(NOW)}) == "missing signature"


def test_a_signature_without_a_timestamp_is_refused() -> None:
    headers = sign(SECRET, BODY, timestamp=NOW)
    del headers["X-Vecron-Timestamp"]
    assert refusal(headers) == "missing timestamp"


@pytest.mark.parametrize(
    "stamp",
    ["", "now", "+1760000000", "-1", " 1760000000", "1760000000.5", "1_760_000_000",
     "1e9", "١٧٦٠٠٠٠٠٠٠", "17600000000000"],
)  # fmt: skip
def test_a_malformed_timestamp_is_refused(stamp: str) -> None:
    headers = {"X-Vecron-Timestamp": stamp, "X-Vecron-Signature": "sha256=" + "0" * 64}
    assert refusal(headers) == "malformed timestamp"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0" * 64,  # no prefix
        "sha1=" + "0" * 40,
        "sha256=" + "0" * 63,
        "sha256=" + "0" * 65,
        "sha256=" + "g" * 64,
        "sha256=" + "00 " * 16 + "00" * 8,  # fromhex would skip the spaces
        "SHA256=" + "0" * 64,
    ],
)
@pytest.mark.parametrize("scheme", signing.SCHEMES)
def test_a_malformed_signature_is_refused(value: str, scheme: Scheme) -> None:
    name = "X-Vecron-Signature" if scheme == "vecron" else "X-Hub-Signature-256"
    headers = {name: value, "X-Vecron-Timestamp": str(NOW)}
    assert refusal(headers, schemes=(scheme,)) == "malformed signature"


def test_upper_case_hex_is_the_same_signature() -> None:
    headers = sign(SECRET, BODY, timestamp=NOW)
    headers["X-Vecron-Signature"] = "sha256=" + headers["X-Vecron-Signature"][7:].upper()
    assert verify(headers, BODY, SECRET, ["vecron"], NOW) == "vecron"


def test_a_replayed_request_is_refused_outside_the_tolerance() -> None:
    captured = sign(SECRET, BODY, timestamp=NOW)
    assert verify(captured, BODY, SECRET, ["vecron"], NOW + 300) == "vecron"
    assert verify(captured, BODY, SECRET, ["vecron"], NOW - 300) == "vecron"
    assert refusal(captured, now=NOW + 301) == "stale timestamp"
    assert refusal(captured, now=NOW + 3600) == "stale timestamp"
    assert refusal(captured, now=NOW - 301) == "timestamp in the future"
    assert refusal(captured, now=NOW + 31, tolerance_seconds=30) == "stale timestamp"
    assert verify(captured, BODY, SECRET, ["vecron"], NOW + 29, tolerance_seconds=30)


def test_the_default_clock_is_the_wall_clock() -> None:
    assert verify(sign(SECRET, BODY), BODY, SECRET, ["vecron"]) == "vecron"
    with pytest.raises(SignatureRefused, match="stale timestamp"):
        verify(sign(SECRET, BODY, timestamp=NOW - 10**6), BODY, SECRET, ["vecron"])


def test_a_fresh_timestamp_on_a_captured_signature_is_refused() -> None:
    """The timestamp is signed: a replayer cannot just refresh it."""
    captured = sign(SECRET, BODY, timestamp=NOW - 3600)
    replayed = {**captured, "X-Vecron-Timestamp": str(NOW)}
    assert refusal(replayed) == "bad signature"
    # Nor pass off a signature of the body alone (GitHub's text) as a vecron one.
    github = sign(SECRET, BODY, scheme="github")["X-Hub-Signature-256"]
    assert refusal({"X-Vecron-Signature": github, "X-Vecron-Timestamp": str(NOW)}) == (
        "bad signature"
    )


def test_a_wrong_secret_is_refused() -> None:
    for scheme in signing.SCHEMES:
        headers = sign("another secret", BODY, scheme=scheme, timestamp=NOW)
        assert refusal(headers, schemes=(scheme,)) == "bad signature"


def test_an_empty_secret_signs_nothing() -> None:
    """Anyone can compute an HMAC with an empty key: a job without a secret is shut."""
    forged = {
        "X-Vecron-Timestamp": str(NOW),
        "X-Vecron-Signature": "sha256="
        + hmac.new(b"", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest(),
    }
    for secret in ("", b""):
        with pytest.raises(SignatureRefused, match="the webhook has no secret"):
            verify(forged, BODY, secret, ["vecron"], NOW)
        with pytest.raises(ValueError, match="empty secret"):
            sign(secret, BODY, timestamp=NOW)


def test_only_the_jobs_schemes_count() -> None:
    github = sign(SECRET, BODY, scheme="github")
    vecron = sign(SECRET, BODY, timestamp=NOW)
    assert refusal(github, schemes=("vecron",)) == "missing signature"
    assert refusal(vecron, schemes=("github",)) == "missing signature"
    assert refusal(vecron, schemes=()) == "no signature scheme is enabled"
    with pytest.raises(ValueError, match="unknown signature scheme"):
        verify(vecron, BODY, SECRET, ["hmac"], NOW)  # type: ignore[list-item]


def test_with_both_schemes_a_valid_signature_wins_and_the_first_failure_is_reported() -> None:
    good_github = sign(SECRET, BODY, scheme="github")
    stale_vecron = sign(SECRET, BODY, timestamp=NOW - 3600)
    both = {**stale_vecron, **good_github}
    assert verify(both, BODY, SECRET, ["vecron", "github"], NOW) == "github"
    bad_github = {"X-Hub-Signature-256": "sha256=" + "0" * 64}
    assert refusal({**stale_vecron, **bad_github}, schemes=("vecron", "github")) == (
        "stale timestamp"
    )
    assert refusal({**stale_vecron, **bad_github}, schemes=("github", "vecron")) == (
        "bad signature"
    )
    assert refusal(bad_github, schemes=("vecron", "github")) == "bad signature"


@given(secret=st.text(alphabet="abcdef0123456789sha=", min_size=8, max_size=40))
def test_a_refusal_never_shows_the_secret_or_the_expected_signature(secret: str) -> None:
    expected = {
        sign(secret, BODY, timestamp=NOW)["X-Vecron-Signature"][7:],
        sign(secret, BODY, scheme="github")["X-Hub-Signature-256"][7:],
    }
    attempts = [
        {"X-Vecron-Signature": "sha256=" + "0" * 64, "X-Vecron-Timestamp": str(NOW)},
        {"X-Hub-Signature-256": "sha256=" + "1" * 64},
        {"X-Vecron-Signature": "sha256=" + "0" * 64, "X-Vecron-Timestamp": "1"},
    ]
    for headers in attempts:
        with pytest.raises(SignatureRefused) as caught:
            verify(headers, BODY, secret, signing.SCHEMES, NOW)
        shown = f"{caught.value} {caught.value!r} {caught.value.args} {caught.value.reason}"
        assert secret not in shown
        assert not any(digest in shown for digest in expected)
        assert len(caught.value.reason) < 40


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for scheme in signing.SCHEMES:
        headers = sign(SECRET, BODY, scheme=scheme, timestamp=NOW)
        assert verify(headers, BODY, SECRET, [scheme], NOW) == scheme
        assert refusal(headers, BODY + b" ", schemes=(scheme,)) == "bad signature"
    assert len(compared) == 4


def test_refusals_belong_to_the_error_tree() -> None:
    error = SignatureRefused("bad signature")
    assert isinstance(error, VecronError)
    assert str(error) == "signature refused: bad signature"


def test_sign_refuses_what_it_cannot_sign() -> None:
    with pytest.raises(ValueError, match="negative"):
        sign(SECRET, BODY, timestamp=-1)
    with pytest.raises(ValueError, match="unknown signature scheme"):
        sign(SECRET, BODY, scheme="md5")  # type: ignore[arg-type]
    assert sign(SECRET, b"", timestamp=0)["X-Vecron-Timestamp"] == "0"
