"""The transformers captioner on tiny models made here, one of each kind it supports (BLIP
unprompted, Florence-2 with a task token, a chat model with an instruction): real loading, real
generation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loraforge.adapters.captioning.transformers_captioner import TransformersCaptioner
from tests import imagefactory
from tests.unit.adapters import tiny_prompted
from tests.unit.adapters.tiny_blip import WORD, build_tiny_blip


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def blip_dir(offline: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


@pytest.fixture(scope="module")
def florence_dir(offline: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_prompted.build_tiny_florence2(tmp_path_factory.mktemp("tiny-florence2"))


@pytest.fixture(scope="module")
def chat_dir(offline: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_prompted.build_tiny_chat_vlm(tmp_path_factory.mktemp("tiny-chat-vlm"))


def test_captions_an_image(blip_dir: Path) -> None:
    captioner = TransformersCaptioner(blip_dir, max_new_tokens=4)
    assert captioner.caption(imagefactory.png(64, 48)) == " ".join([WORD] * 4)
    # The model stays loaded; a JPEG of another size goes through the same processor.
    assert captioner.caption(imagefactory.jpeg(20, 90)) == " ".join([WORD] * 4)


def test_a_missing_folder_fails_on_first_use(tmp_path: Path) -> None:
    captioner = TransformersCaptioner(tmp_path / "absent")  # constructing loads nothing
    with pytest.raises(FileNotFoundError):
        captioner.caption(imagefactory.png(8, 8))


def test_florence2_captions_with_its_task_token(florence_dir: Path) -> None:
    captioner = TransformersCaptioner(florence_dir, prompt="<CAPTION>", max_new_tokens=4)
    expected = " ".join([tiny_prompted.WORD] * 4)
    assert captioner.caption(imagefactory.png(64, 48)) == expected
    assert captioner.caption(imagefactory.jpeg(20, 90)) == expected


def test_a_chat_model_answers_the_prompt_and_the_answer_is_the_caption(chat_dir: Path) -> None:
    captioner = TransformersCaptioner(chat_dir, prompt="Describe this image.", max_new_tokens=3)
    # Only the answer: the conversation it was given (USER: ... ASSISTANT:) is cut away.
    assert captioner.caption(imagefactory.png(40, 30)) == " ".join([tiny_prompted.WORD] * 3)
