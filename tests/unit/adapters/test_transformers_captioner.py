"""The transformers captioner on a tiny BLIP made here: real loading, real generation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loraforge.adapters.captioning.transformers_captioner import TransformersCaptioner
from tests import imagefactory
from tests.unit.adapters.tiny_blip import WORD, build_tiny_blip


@pytest.fixture(scope="module")
def blip_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("TRANSFORMERS_OFFLINE", "1")
        yield build_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


def test_captions_an_image(blip_dir: Path) -> None:
    captioner = TransformersCaptioner(blip_dir, max_new_tokens=4)
    assert captioner.caption(imagefactory.png(64, 48)) == " ".join([WORD] * 4)
    # The model stays loaded; a JPEG of another size goes through the same processor.
    assert captioner.caption(imagefactory.jpeg(20, 90)) == " ".join([WORD] * 4)


def test_a_missing_folder_fails_on_first_use(tmp_path: Path) -> None:
    captioner = TransformersCaptioner(tmp_path / "absent")  # constructing loads nothing
    with pytest.raises(FileNotFoundError):
        captioner.caption(imagefactory.png(8, 8))
