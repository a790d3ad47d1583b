"""Loading a base model's diffusers pipeline from local disk (heavy: imports diffusers).

SD 1.5 and SDXL pipelines come from a diffusers folder (``from_pretrained``) or a single-file
checkpoint (``from_single_file`` with the configs folder beside it); SD3 and FLUX from a
diffusers folder; ``tiny`` from the folder shipped in the package. ``local_files_only``
everywhere: a hub is never asked.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    FluxPipeline,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from loraforge.adapters.ml.device import Placement
from loraforge.adapters.ml.registry import check_model_path, single_file_config_dir
from loraforge.adapters.ml.tiny import WEIGHTS_DIR
from loraforge.domain.ml import BaseModel, ModelFamily

Pipeline: TypeAlias = (
    StableDiffusionPipeline | StableDiffusionXLPipeline | StableDiffusion3Pipeline | FluxPipeline
)
PIPELINE_CLASSES: dict[ModelFamily, type[Pipeline]] = {
    ModelFamily.SD15: StableDiffusionPipeline,
    ModelFamily.SDXL: StableDiffusionXLPipeline,
    ModelFamily.SD3: StableDiffusion3Pipeline,
    ModelFamily.FLUX: FluxPipeline,
}


def pipeline_class(family: ModelFamily) -> type[Pipeline]:
    return PIPELINE_CLASSES[family]


def denoiser(pipe: Pipeline) -> Any:
    """The network that denoises: the UNet of SD 1.5 and SDXL, the transformer of SD3 and FLUX
    (the one the LoRA goes into)."""
    if isinstance(pipe, StableDiffusion3Pipeline | FluxPipeline):
        return pipe.transformer
    return pipe.unet


def load_pipeline(base: BaseModel, placement: Placement) -> Pipeline:
    """The base model's pipeline on ``placement``, progress bars off."""
    cls = pipeline_class(base.family)
    path = base.path if base.path is not None else WEIGHTS_DIR
    check_model_path(base.name, path)
    options: dict[str, object] = {"dtype": placement.dtype, "local_files_only": True}
    if base.family is ModelFamily.SD15:
        # The safety checker is a 1.2 GB CLIP that blacks out images; not part of this service.
        options |= {"safety_checker": None, "requires_safety_checker": False}
    if path.is_file():
        config = str(single_file_config_dir(path))
        pipe = cls.from_single_file(str(path), config=config, **options)
    else:
        pipe = cls.from_pretrained(str(path), **options)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(placement.device)
    return pipe


# Each name of domain.ml.SCHEDULERS: the diffusers class and the options it is built with.
SCHEDULER_CLASSES: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "ddim": (DDIMScheduler, {}),
    "unipc": (UniPCMultistepScheduler, {}),
}


def make_scheduler(default: SchedulerMixin, name: str | None) -> SchedulerMixin:
    """A fresh scheduler from the base model's scheduler config (``default`` is the one its
    pipeline was loaded with): the named kind, or ``default``'s own kind for ``None``. Fresh
    per request: schedulers keep per-run state (step index, sigmas)."""
    cls, options = (type(default), {}) if name is None else SCHEDULER_CLASSES[name]
    scheduler: SchedulerMixin = cls.from_config(default.config, **options)
    return scheduler


def image_to_image(pipe: Pipeline, *, inpaint: bool) -> DiffusionPipeline:
    """The image-to-image (or inpainting) pipeline over ``pipe``'s own components: the same
    modules, so no second copy of the weights, and the LoRA adapters active in ``pipe``.
    Inpainting works with the base model's regular 4-channel UNet: diffusers blends the
    unmasked part of the init image's latents back in at every step."""
    auto = AutoPipelineForInpainting if inpaint else AutoPipelineForImage2Image
    derived: DiffusionPipeline = auto.from_pipe(pipe)
    derived.set_progress_bar_config(disable=True)
    return derived
