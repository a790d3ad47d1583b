"""Captions and a training's words: what is stored, what is refused, what an image trains with."""

from __future__ import annotations

import pytest

from loraforge.domain.captions import (
    MAX_CAPTION,
    TrainingWords,
    WordFields,
    clean_caption,
    user_caption,
)
from loraforge.domain.errors import InvalidInput


def test_captions_are_one_bounded_line_of_printable_text() -> None:
    assert clean_caption("  a red\n\tdress\x00 on a  chair ") == "a red dress on a chair"
    assert len(clean_caption("word " * 500)) == MAX_CAPTION
    assert user_caption("") == ""
    with pytest.raises(InvalidInput) as refused:
        user_caption("x" * (MAX_CAPTION + 1))
    assert refused.value.field == "caption"


@pytest.mark.parametrize(
    ("words", "caption", "expected"),
    [
        (TrainingWords(), "a red dress", "a photo of ohwx, a red dress"),
        (TrainingWords(), "", "a photo of ohwx"),
        (TrainingWords(class_word="woman"), "", "a photo of ohwx woman"),
        (TrainingWords(class_word="woman"), "smiling", "a photo of ohwx woman, smiling"),
        (TrainingWords(template="{caption}, {trigger} style"), "", "ohwx style"),
        (TrainingWords(template="{caption} , , {trigger}"), "a cat", "a cat, ohwx"),
        (TrainingWords(template="{{literal}} {trigger}"), "", "{literal} ohwx"),
        # A caption's own commas and braces are kept as written.
        (TrainingWords(), "1,000 {x} people", "a photo of ohwx, 1,000 {x} people"),
    ],
)
def test_the_template_fills_in_and_empty_parts_leave_nothing_behind(
    words: TrainingWords, caption: str, expected: str
) -> None:
    assert words.checked().caption("ohwx", caption) == expected


def test_the_class_word_is_tidied() -> None:
    assert TrainingWords(class_word="  watercolor   style ").checked().class_word == (
        "watercolor style"
    )


@pytest.mark.parametrize(
    ("words", "field"),
    [
        (TrainingWords(trigger=""), "triggerWord"),
        (TrainingWords(trigger="two words"), "triggerWord"),
        (TrainingWords(trigger="x" * 33), "triggerWord"),
        (TrainingWords(trigger="émile"), "triggerWord"),
        (TrainingWords(class_word="x" * 65), "classWord"),
        (TrainingWords(class_word="a\x00b"), "classWord"),
        (TrainingWords(template=""), "captionTemplate"),
        (TrainingWords(template="x" * 501), "captionTemplate"),
        (TrainingWords(template="{subject}"), "captionTemplate"),
        (TrainingWords(template="{trigger!r}"), "captionTemplate"),
        (TrainingWords(template="{trigger:>9}"), "captionTemplate"),
        (TrainingWords(template="{0}"), "captionTemplate"),
        (TrainingWords(template="a {trigger"), "captionTemplate"),
    ],
)
def test_bad_words_are_refused_naming_their_field(words: TrainingWords, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        words.checked()
    assert refused.value.field == field


def test_a_wire_format_names_the_fields_its_own_way() -> None:
    fields = WordFields(trigger="concept", class_word="klass", template="concept")
    with pytest.raises(InvalidInput) as refused:
        TrainingWords(trigger="no spaces please").checked(fields)
    assert refused.value.field == "concept"


def test_good_words_pass() -> None:
    words = TrainingWords(trigger="my_Concept-1", class_word="sneaker", template="{trigger}")
    assert words.checked() == words
