"""A prediction's optional inputs (negative prompt, scheduler, image-to-image, inpainting,
reference images, control) and the checks they get before anything is fetched or stored."""

from __future__ import annotations

from dataclasses import dataclass

from loraforge.domain.errors import InvalidInput
from loraforge.domain.ml import SCHEDULERS, BaseModel, PredictionInput, supported_inputs
from loraforge.services.input_pictures import Named

MAX_NEGATIVE_PROMPT = 1000
MAX_REFERENCE_IMAGES = 4
CONTROL_TYPES = ("canny", "depth", "pose")
MAX_CONTROL_SCALE = 2.0


@dataclass(frozen=True)
class Control:
    """ControlNet conditioning: ``type``'s map (canny edges are computed from ``image``)."""

    type: str
    image: str
    scale: float = 1.0


@dataclass(frozen=True)
class InputRequest:
    negative_prompt: str = ""
    scheduler: str | None = None
    init_image: str | None = None  # an image id, a data URI or a URL
    strength: float | None = None  # None: DEFAULT_STRENGTH
    mask_image: str | None = None  # same forms; white = repaint
    reference_images: tuple[str, ...] = ()
    reference_scale: float | None = None
    control: Control | None = None


def pictures(inputs: InputRequest) -> list[Named]:
    """The input pictures a run uses, by field."""
    given = (("init_image", inputs.init_image), ("mask_image", inputs.mask_image))
    return [Named(field, value) for field, value in given if value is not None]


def check_inputs(inputs: InputRequest, base_name: str, base: BaseModel | None) -> None:
    """``InvalidInput`` naming the field for a bad value, a bad combination, or an input that
    the base model (``None``: no longer configured; its run will fail) cannot use."""
    if len(inputs.negative_prompt) > MAX_NEGATIVE_PROMPT:
        raise InvalidInput(
            f"negative_prompt is longer than {MAX_NEGATIVE_PROMPT} characters.",
            field="negative_prompt",
        )
    if inputs.scheduler is not None and inputs.scheduler not in SCHEDULERS:
        raise InvalidInput(f"scheduler must be one of {', '.join(SCHEDULERS)}.", field="scheduler")
    _check_pictures(inputs)
    _check_reference(inputs)
    _check_control(inputs.control)
    supported = set(supported_inputs(base)) if base is not None else set(PredictionInput)
    if inputs.scheduler is not None and PredictionInput.SCHEDULER not in supported:
        raise InvalidInput(
            f"Base model {base_name} is a flow-matching model: it samples with its own "
            "scheduler only, so scheduler cannot be set.",
            code="scheduler_unsupported",
            field="scheduler",
        )
    if inputs.reference_images and PredictionInput.REFERENCE_IMAGES not in supported:
        raise InvalidInput(
            f"Base model {base_name} has no IP-Adapter configured: reference_images "
            "cannot be used with it.",
            code="reference_unsupported",
            field="reference_images",
        )
    if inputs.control is not None and PredictionInput.CONTROL not in supported:
        raise InvalidInput(
            f"Base model {base_name} has no ControlNet configured: control cannot be used with it.",
            code="control_unsupported",
            field="control",
        )


def _check_pictures(inputs: InputRequest) -> None:
    if inputs.strength is not None:
        if not 0 <= inputs.strength <= 1:
            raise InvalidInput("strength must be between 0 and 1.", field="strength")
        if inputs.init_image is None:
            raise InvalidInput("strength needs an init_image.", field="strength")
    if inputs.mask_image is not None and inputs.init_image is None:
        raise InvalidInput(
            "mask_image needs an init_image: inpainting repaints the mask's white part of it.",
            code="init_image_required",
            field="mask_image",
        )


def _check_reference(inputs: InputRequest) -> None:
    if len(inputs.reference_images) > MAX_REFERENCE_IMAGES:
        raise InvalidInput(
            f"reference_images takes at most {MAX_REFERENCE_IMAGES} image ids.",
            field="reference_images",
        )
    if inputs.reference_scale is not None:
        if not 0 <= inputs.reference_scale <= 1:
            raise InvalidInput("reference_scale must be between 0 and 1.", field="reference_scale")
        if not inputs.reference_images:
            raise InvalidInput("reference_scale needs reference_images.", field="reference_scale")


def _check_control(control: Control | None) -> None:
    if control is None:
        return
    if control.type not in CONTROL_TYPES:
        raise InvalidInput(
            f"control.type must be one of {', '.join(CONTROL_TYPES)}.", field="control.type"
        )
    if not 0 <= control.scale <= MAX_CONTROL_SCALE:
        raise InvalidInput(
            f"control.scale must be between 0 and {MAX_CONTROL_SCALE:g}.", field="control.scale"
        )
