"""The prediction inputs' checks, before anything is fetched or stored."""

from __future__ import annotations

import pytest

from loraforge.adapters.ml.registry import TINY
from loraforge.domain.errors import InvalidInput
from loraforge.domain.ml import render_size
from loraforge.services.prediction_inputs import Control, InputRequest, check_inputs, pictures


@pytest.mark.parametrize(
    ("inputs", "code", "field"),
    [
        (InputRequest(negative_prompt="x" * 1001), "invalid_request", "negative_prompt"),
        (InputRequest(scheduler="lms"), "invalid_request", "scheduler"),
        (InputRequest(strength=0.5), "invalid_request", "strength"),
        (InputRequest(init_image="i", strength=-0.1), "invalid_request", "strength"),
        (InputRequest(mask_image="m"), "init_image_required", "mask_image"),
        (InputRequest(reference_images=("a",) * 5), "invalid_request", "reference_images"),
        (InputRequest(reference_scale=0.5), "invalid_request", "reference_scale"),
        (InputRequest(reference_images=("a",)), "reference_unsupported", "reference_images"),
        (InputRequest(control=Control("canny", "i")), "control_unsupported", "control"),
        (InputRequest(control=Control("edges", "i")), "invalid_request", "control.type"),
        (InputRequest(control=Control("pose", "i", 2.5)), "invalid_request", "control.scale"),
    ],
)
def test_bad_inputs_name_their_field(inputs: InputRequest, code: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_inputs(inputs, "tiny", TINY)
    assert (caught.value.code, caught.value.field) == (code, field)


def test_good_inputs_pass_and_list_their_pictures() -> None:
    inputs = InputRequest(
        negative_prompt="blurry",
        scheduler="unipc",
        init_image="an-image-id",
        strength=0.0,
        mask_image="data:image/png;base64,AAAA",
    )
    check_inputs(inputs, "tiny", TINY)
    assert [(n.field, n.value) for n in pictures(inputs)] == [
        ("init_image", "an-image-id"),
        ("mask_image", "data:image/png;base64,AAAA"),
    ]


def test_an_unconfigured_base_model_is_left_to_its_run() -> None:
    check_inputs(InputRequest(reference_images=("a",)), "gone", None)


@pytest.mark.parametrize(
    ("size", "rendered"),
    [
        ((511, 504), (511, 504)),  # below twice the native side by area: as asked
        ((512, 512), (256, 256)),
        ((512, 768), (208, 312)),
        ((1536, 512), (440, 144)),
    ],
)
def test_big_requests_render_at_the_native_area(
    size: tuple[int, int], rendered: tuple[int, int]
) -> None:
    assert render_size(TINY, *size) == rendered
