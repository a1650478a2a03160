"""SecretBox: secrets at rest, keyed by VECRON_SECRET_KEY or a generated key file."""

from __future__ import annotations

import stat
import threading
import traceback
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vecron.crypto import KEY_FILE_NAME, WRONG_KEY_MESSAGE, SecretBox
from vecron.errors import ConfigurationError
from vecron.settings import Settings


@given(plaintext=st.text())
def test_round_trip(plaintext: str) -> None:
    box = SecretBox.from_secret("correct horse battery staple")
    ciphertext = box.encrypt(plaintext)
    assert ciphertext.isascii()
    assert box.decrypt(ciphertext) == plaintext


def test_ciphertexts_differ_and_hide_the_plaintext() -> None:
    box = SecretBox.generate()
    first, second = box.encrypt("hunter2"), box.encrypt("hunter2")
    assert first != second
    assert "hunter2" not in first
    assert box.decrypt(first) == box.decrypt(second) == "hunter2"


def test_the_same_secret_derives_the_same_key() -> None:
    ciphertext = SecretBox.from_secret("s3cret").encrypt("value")
    assert SecretBox.from_secret("s3cret").decrypt(ciphertext) == "value"


@pytest.mark.parametrize(
    "other",
    [SecretBox.from_secret("another"), SecretBox.from_secret("s3cret "), SecretBox.generate()],
)
def test_another_key_is_a_clear_error_that_leaks_nothing(other: SecretBox) -> None:
    ciphertext = SecretBox.from_secret("s3cret").encrypt("the-plaintext")
    with pytest.raises(ConfigurationError) as caught:
        other.decrypt(ciphertext)
    assert str(caught.value) == WRONG_KEY_MESSAGE
    assert caught.value.__suppress_context__
    rendered = "".join(traceback.format_exception(caught.value))
    assert "the-plaintext" not in rendered
    assert ciphertext not in rendered


@pytest.mark.parametrize("garbage", ["", "not a token", "gAAAAA", "ünïcode"])
def test_garbage_is_the_same_clear_error(garbage: str) -> None:
    with pytest.raises(ConfigurationError, match=WRONG_KEY_MESSAGE):
        SecretBox.generate().decrypt(garbage)


def test_an_empty_secret_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        SecretBox.from_secret("")


def test_a_malformed_fernet_key_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="Fernet key"):
        SecretBox(b"too short")


def test_repr_hides_the_key() -> None:
    assert repr(SecretBox.from_secret("s3cret")) == "SecretBox(<key hidden>)"


def test_settings_secret_key_wins_over_the_key_file(tmp_path: Path) -> None:
    box = SecretBox.from_settings(Settings(home=tmp_path, secret_key="from-env"))
    assert SecretBox.from_secret("from-env").decrypt(box.encrypt("x")) == "x"
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_without_a_secret_key_a_key_file_is_made_once_and_reused(tmp_path: Path) -> None:
    home = tmp_path / "not" / "yet" / "there"
    first = SecretBox.from_settings(Settings(home=home))
    key_file = home / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_bytes()
    second = SecretBox.from_settings(Settings(home=home))
    assert key_file.read_bytes() == content
    assert second.decrypt(first.encrypt("kept")) == "kept"
    assert [p.name for p in home.iterdir()] == [KEY_FILE_NAME]  # no temporary files left


def test_concurrent_starts_agree_on_one_key(tmp_path: Path) -> None:
    boxes: list[SecretBox] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        boxes.append(SecretBox.from_key_file(tmp_path / KEY_FILE_NAME))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ciphertext = boxes[0].encrypt("shared")
    assert [box.decrypt(ciphertext) for box in boxes] == ["shared"] * 8
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE_NAME]


def test_a_corrupt_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("not a key\n")
    with pytest.raises(ConfigurationError, match="does not hold a valid key"):
        SecretBox.from_settings(Settings(home=tmp_path))


def test_an_unwritable_home_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigurationError, match="cannot create the secret key file"):
        SecretBox.from_settings(Settings(home=blocker / "home"))
