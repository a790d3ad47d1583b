"""The names a downloaded training set gives its files (``entry_stems``)."""

from __future__ import annotations

import pytest

from loraforge.services.training_archives import entry_stems
from tests.unit.services.test_images import World, make_world


@pytest.fixture
def world() -> World:
    return make_world()


def stems(world: World, *names: str | None) -> list[str]:
    images = [world.ingest(f"picture {n}".encode(), name=name) for n, name in enumerate(names)]
    return entry_stems(images)


def test_the_upload_s_name_without_its_suffix(world: World) -> None:
    assert stems(world, "cat.jpg", "a b\u00e9-2_x.png", "photo.tar.gz") == [
        "cat",
        "a b\u00e9-2_x",
        "photo_tar",  # a dot could make the name look like another file type
    ]


def test_names_are_unique_whatever_their_case(world: World) -> None:
    result = stems(world, "same.jpg", "same.png", "SAME.jpg")
    assert result[0] == "same"
    assert len({s.casefold() for s in result}) == 3
    assert all(s.casefold().startswith("same-") for s in result[1:])


@pytest.mark.parametrize("name", [None, "..", "../../etc/passwd", "C:\\evil.jpg", "\x00\x01.jpg"])
def test_nothing_of_a_path_drive_or_control_character_is_kept(
    world: World, name: str | None
) -> None:
    (stem,) = stems(world, name)
    assert stem
    assert not any(c in stem for c in "./\\:\x00\x01")
    assert not stem.startswith((" ", "_"))
