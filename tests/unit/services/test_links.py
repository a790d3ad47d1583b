"""Signed image links: valid until expiry, bound to image and variant, tamper-evident."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from loraforge.domain.entities import ImageVariant
from loraforge.domain.errors import Forbidden
from loraforge.ports import Clock
from loraforge.services.links import SECRET_FILE, LinkSigner, signing_secret
from tests.fakes import FakeClock

START = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)  # on a minute boundary
TTL = 3600
ORIGINAL = ImageVariant.ORIGINAL


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def signer(clock: FakeClock) -> LinkSigner:
    port: Clock = clock
    return LinkSigner(secret=b"s3cret", ttl_s=TTL, clock=port)


def test_a_fresh_link_verifies(signer: LinkSigner) -> None:
    link = signer.sign("img-1", ORIGINAL)
    assert link.expires == int(START.timestamp()) + TTL
    signer.verify("img-1", ORIGINAL, expires=link.expires, sig=link.sig)
    assert not set(link.sig) & set("=/+")  # URL-safe


def test_expiry_is_rounded_up_to_the_minute(signer: LinkSigner, clock: FakeClock) -> None:
    first = signer.sign("img-1", ORIGINAL)
    clock.advance(1)
    later_same_minute = signer.sign("img-1", ORIGINAL)
    assert later_same_minute.expires == first.expires + 60
    clock.advance(58)
    assert signer.sign("img-1", ORIGINAL) == later_same_minute  # cacheable: identical
    assert later_same_minute.expires % 60 == 0


def test_link_works_until_expiry_and_not_after(signer: LinkSigner, clock: FakeClock) -> None:
    link = signer.sign("img-1", ORIGINAL)
    clock.advance(TTL)  # exactly at the expiry second
    signer.verify("img-1", ORIGINAL, expires=link.expires, sig=link.sig)
    clock.advance(1)
    with pytest.raises(Forbidden, match="expired"):
        signer.verify("img-1", ORIGINAL, expires=link.expires, sig=link.sig)


def test_extending_the_expiry_breaks_the_signature(signer: LinkSigner, clock: FakeClock) -> None:
    link = signer.sign("img-1", ORIGINAL)
    clock.advance(TTL + 60)
    with pytest.raises(Forbidden, match="signature"):
        signer.verify("img-1", ORIGINAL, expires=link.expires + 3600, sig=link.sig)


@pytest.mark.parametrize(
    ("image_id", "variant", "tamper"),
    [
        ("img-2", ORIGINAL, False),  # another image
        ("img-1", ImageVariant.DISPLAY, False),  # another variant
        ("img-1", ORIGINAL, True),  # a changed signature
    ],
)
def test_a_link_is_bound_to_image_and_variant(
    signer: LinkSigner, image_id: str, variant: ImageVariant, tamper: bool
) -> None:
    link = signer.sign("img-1", ORIGINAL)
    sig = link.sig
    if tamper:
        sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    with pytest.raises(Forbidden):
        signer.verify(image_id, variant, expires=link.expires, sig=sig)


@pytest.mark.parametrize("sig", ["", "x", "ü" * 43, "%00"])
def test_garbage_signatures_are_forbidden(signer: LinkSigner, sig: str) -> None:
    link = signer.sign("img-1", ORIGINAL)
    with pytest.raises(Forbidden):
        signer.verify("img-1", ORIGINAL, expires=link.expires, sig=sig)


def test_another_secret_does_not_verify(signer: LinkSigner, clock: FakeClock) -> None:
    link = signer.sign("img-1", ORIGINAL)
    other = LinkSigner(secret=b"other", ttl_s=TTL, clock=clock)
    with pytest.raises(Forbidden):
        other.verify("img-1", ORIGINAL, expires=link.expires, sig=link.sig)


def test_the_separator_cannot_be_smuggled_through_the_id(signer: LinkSigner) -> None:
    link = signer.sign("img-1", ORIGINAL)
    with pytest.raises(Forbidden):
        signer.verify("img-1\noriginal", ORIGINAL, expires=link.expires, sig=link.sig)


def test_a_configured_signing_secret_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    assert signing_secret("configured", tmp_path) == b"configured"
    assert list(tmp_path.iterdir()) == []


def test_without_one_a_private_secret_is_made_once_in_the_data_dir(tmp_path: Path) -> None:
    made = signing_secret(None, tmp_path)

    path = tmp_path / SECRET_FILE
    assert len(made) == 64  # 32 random bytes, hex
    assert path.read_text() == made.decode() + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing_secret(None, tmp_path) == made  # links survive a restart
