"""Image type names on the wire, and the one parser of the ``imageType`` query parameter.

The names are shared by the seeds (PhotoGPT ``type`` / ``imageType``, seed 003) and the native
API; the core knows only ``ImageKind``. Every route that lists images by type takes
``ImageKindsQuery``, so ``imageType``'s values, default and 422 are the same in every wire
format.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query

from loraforge.domain.entities import ImageKind

ImageTypeName = Literal["modelInput", "auxiliaryType"]
"""The type an upload names (``type``): a training or a reference image."""

ImageFilter = Literal["all", "input", "output", "auxiliaryType"]
"""The values of ``imageType`` when listing a model's images."""

KIND_BY_TYPE_NAME: dict[str, ImageKind] = {
    "modelInput": ImageKind.TRAINING,
    "auxiliaryType": ImageKind.REFERENCE,
}
TYPE_NAME_BY_KIND: dict[ImageKind, str] = {
    ImageKind.TRAINING: "modelInput",
    ImageKind.REFERENCE: "auxiliaryType",
    ImageKind.OUTPUT: "output",
    ImageKind.SAMPLE: "sample",  # a training's samples: listed only under the training
}
KINDS_BY_FILTER: dict[str, frozenset[ImageKind]] = {
    "all": frozenset(ImageKind) - {ImageKind.SAMPLE},
    "input": frozenset({ImageKind.TRAINING}),
    "output": frozenset({ImageKind.OUTPUT}),
    "auxiliaryType": frozenset({ImageKind.REFERENCE}),
}


def image_kinds(
    image_type: Annotated[ImageFilter, Query(alias="imageType")] = "all",
) -> frozenset[ImageKind]:
    """The kinds that ``imageType`` selects (every kind but training samples when it is
    absent)."""
    return KINDS_BY_FILTER[image_type]


ImageKindsQuery = Annotated[frozenset[ImageKind], Depends(image_kinds)]
