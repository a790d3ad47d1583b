"""Captions of training images, and the words a training adds to them.

An image's caption says what is in the picture; a training turns it into the text it trains
with through a template of its trigger word (the new concept), its class word (what kind of
thing the concept is) and the caption: ``a photo of {trigger} {class}, {caption}`` by default.
"""

from __future__ import annotations

import enum
import re
import string
from dataclasses import dataclass, replace
from typing import NamedTuple

from loraforge.domain.errors import InvalidInput

MAX_CAPTION = 1000
MAX_CLASS_WORD = 64
MAX_TEMPLATE = 500
TRIGGER_WORD = re.compile(r"[A-Za-z0-9_-]{1,32}")
DEFAULT_TEMPLATE = "a photo of {trigger} {class}, {caption}"
PLACEHOLDERS = frozenset({"trigger", "class", "caption"})


class CaptionSource(enum.StrEnum):
    """Who wrote an image's caption."""

    USER = "user"  # the client, at upload or later; may be empty on purpose
    AUTO = "auto"  # the configured captioning model, in a background job
    NONE = "none"  # nobody yet: automatic captioning fills these


def clean_caption(text: str) -> str:
    """One line of printable text, bounded: what a caption is stored as."""
    words = "".join(c if c.isprintable() else " " for c in text).split()
    return " ".join(words)[:MAX_CAPTION]


def user_caption(text: str) -> str:
    """A caption a client wrote, cleaned; over ``MAX_CAPTION`` characters is refused (422)."""
    if len(text) > MAX_CAPTION:
        raise InvalidInput(f"caption is longer than {MAX_CAPTION} characters.", field="caption")
    return clean_caption(text)


class WordFields(NamedTuple):
    """The wire names of a training's words, for the errors that name them."""

    trigger: str = "triggerWord"
    class_word: str = "classWord"
    template: str = "captionTemplate"


NATIVE_FIELDS = WordFields()


@dataclass(frozen=True)
class TrainingWords:
    """What a training adds to every caption. ``trigger`` None: a new random word."""

    trigger: str | None = None
    class_word: str = ""
    template: str = DEFAULT_TEMPLATE

    def checked(self, fields: WordFields = NATIVE_FIELDS) -> TrainingWords:
        """These words, the class word tidied; ``InvalidInput`` naming the field at fault."""
        if self.trigger is not None and not TRIGGER_WORD.fullmatch(self.trigger):
            raise InvalidInput(
                f"{fields.trigger} must be 1 to 32 letters, digits, '_' or '-'.",
                field=fields.trigger,
            )
        class_word = " ".join(self.class_word.split())
        if len(class_word) > MAX_CLASS_WORD or not class_word.isprintable():
            raise InvalidInput(
                f"{fields.class_word} must be at most {MAX_CLASS_WORD} printable characters.",
                field=fields.class_word,
            )
        _check_template(self.template, fields.template)
        return replace(self, class_word=class_word)

    def caption(self, trigger: str, image_caption: str) -> str:
        """The text an image trains with: the template filled in, and what empty parts leave
        behind (double spaces, a dangling comma) tidied away."""
        text = self.template.format_map(
            {"trigger": trigger, "class": self.class_word, "caption": image_caption}
        )
        text = " ".join(text.split())
        text = re.sub(r" ?,(?: ?,)*", ",", text)  # "of X , , y" -> "of X, y"
        return text.strip(" ,")


def _check_template(template: str, field: str) -> None:
    if not 0 < len(template) <= MAX_TEMPLATE:
        raise InvalidInput(f"{field} must be 1 to {MAX_TEMPLATE} characters.", field=field)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:  # a lone "{" or "}"
        raise InvalidInput(
            f"{field}: {exc}; write a literal brace as '{{{{' or '}}}}'.", field=field
        ) from exc
    for _, name, spec, conversion in parts:
        if name is not None and (name not in PLACEHOLDERS or spec or conversion):
            raise InvalidInput(
                f"{field} may only use the placeholders {{trigger}}, {{class}} and {{caption}}.",
                field=field,
            )
