"""LoRA training with diffusers + peft, in the shape of diffusers' train_text_to_image_lora.py.

Read ``run_training`` top to bottom: the samples are decoded and fitted to their aspect-ratio
bucket (``domain.buckets``: a thin margin cut at most, never a centre square), encoded into
latents and text embeddings once (the base is frozen, so they never change); a LoRA is added to
the UNet's attention projections; then each step noises the latents with the DDPM schedule and
teaches the LoRA to predict that noise. SD3 and FLUX (flow-matching transformers) differ in
three places, each a function of its own: their LoRA goes into the transformer's attention (and,
for FLUX, feed-forward) projections (``LORA_TARGETS``), their captions are encoded with all
their text encoders once and the encoders then leave the GPU (T5 need not stay resident), and
their step is ``flow_matching_loss``, as diffusers' train_dreambooth_lora_flux.py / _sd3.py
do it. On a GPU their weights are bf16 and the transformer recomputes activations (gradient
checkpointing); on a CPU neither. Every step reports progress and checks for a stop;
checkpoints let a stopped or crashed training resume; the result is saved with
``save_lora_weights`` so a stock ``pipe.load_lora_weights(path)`` reads it.

Determinism: every random draw of step ``n`` comes from a generator seeded with
``(hyper.seed, n)`` and the sample order of each epoch from ``(hyper.seed, epoch)``, so the step
number *is* the RNG state: a resumed run continues exactly as an uninterrupted one would.
Every batch comes from one bucket (latents of one size stack into one tensor).

torch, diffusers and peft are imported inside the functions: importing this module (as the
worker's composition does) stays cheap.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraforge.adapters.ml.device import Placement, pick_placement, pin_threads
from loraforge.domain.buckets import Fit, fit
from loraforge.domain.ml import (
    BaseModel,
    GenerationSpec,
    Hyperparameters,
    ModelFamily,
    TrainingProgress,
    TrainingSample,
    TrainingSpec,
    TrainingStopped,
)
from loraforge.domain.samples import RenderedSample, SamplePlan, SampleRound

if TYPE_CHECKING:
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel

    from loraforge.adapters.ml.pipelines import Pipeline

ADAPTER = "loraforge"
TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
_SD3_TARGETS = [
    "attn.add_k_proj",
    "attn.add_q_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "attn.to_k",
    "attn.to_out.0",
    "attn.to_q",
    "attn.to_v",
]
# Each family's LoRA layers: the reference scripts' defaults (FLUX's adds the feed-forwards).
LORA_TARGETS = {
    ModelFamily.SD15: TARGET_MODULES,
    ModelFamily.SDXL: TARGET_MODULES,
    ModelFamily.SD3: _SD3_TARGETS,
    ModelFamily.FLUX: [
        *_SD3_TARGETS,
        "ff.net.0.proj",
        "ff.net.2",
        "ff_context.net.0.proj",
        "ff_context.net.2",
    ],
}
FLUX_TRAINING_GUIDANCE = 3.5  # what FLUX.1 dev's guidance embedding is fed (the script's default)
FINAL_NAME = "lora.safetensors"
_CHECKPOINT_GLOB = "checkpoint-*.pt"


class DiffusersLoraTrainer:
    """``Trainer`` on diffusers + peft. Keeps the last base model loaded between trainings."""

    def __init__(self, *, placement: Placement | None = None) -> None:
        self._placement = placement
        self._base: tuple[BaseModel, Pipeline] | None = None
        # One training at a time: they share the cached base and add their LoRA to its UNet.
        self._lock = threading.Lock()

    def train(
        self,
        spec: TrainingSpec,
        *,
        workdir: Path,
        report: Callable[[TrainingProgress], None],
        should_stop: Callable[[], bool],
        on_sample: Callable[[SampleRound], None] | None = None,
    ) -> Path:
        with self._lock:
            pin_threads()
            pipe = self._load_base(spec.base_model)
            return run_training(
                pipe,
                spec,
                workdir=workdir,
                report=report,
                should_stop=should_stop,
                on_sample=on_sample,
            )

    def _load_base(self, base: BaseModel) -> Pipeline:
        from loraforge.adapters.ml.pipelines import load_pipeline

        if self._base is None or self._base[0] != base:
            self._base = None  # drop the old one before loading: two SDXLs may not fit
            self._placement = self._placement or pick_placement()
            pipe = load_pipeline(base, self._placement)
            for module in _frozen_modules(pipe):
                module.requires_grad_(False)
            self._base = (base, pipe)
        return self._base[1]


_TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")


def _frozen_modules(pipe: Pipeline) -> list[torch.nn.Module]:
    names = ("unet", "transformer", "vae", *_TEXT_ENCODERS)
    return [module for name in names if (module := getattr(pipe, name, None)) is not None]


# --- the loop -------------------------------------------------------------------------------


def run_training(
    pipe: Pipeline,
    spec: TrainingSpec,
    *,
    workdir: Path,
    report: Callable[[TrainingProgress], None],
    should_stop: Callable[[], bool],
    on_sample: Callable[[SampleRound], None] | None = None,
) -> Path:
    """Train a LoRA for ``spec`` on the loaded base ``pipe``; return the weights' path.
    After each of ``spec.sampling``'s steps, ``on_sample`` gets that step's samples (and its
    LoRA file at a checkpoint step)."""
    import torch

    from loraforge.adapters.ml.pipelines import denoiser

    hyper = spec.hyper
    family = spec.base_model.family
    if not spec.samples:
        raise ValueError("a training needs at least one sample")
    workdir.mkdir(parents=True, exist_ok=True)
    data = encode_samples(
        pipe, spec.samples, resolution=hyper.resolution, flipped=hyper.flip_augment
    )
    net = denoiser(pipe)
    on_gpu = net.device.type == "cuda"
    if family.flow_matching and on_gpu:
        _text_encoders_to(pipe, torch.device("cpu"))  # the captions are encoded: free the GPU
    noise_scheduler = training_scheduler(pipe, family)
    params = add_lora(net, rank=hyper.rank, alpha=hyper.lora_alpha, seed=hyper.seed, family=family)
    if family.flow_matching and on_gpu:
        net.enable_gradient_checkpointing()
    try:
        optimizer = torch.optim.AdamW(params, lr=hyper.learning_rate, weight_decay=1e-2)
        fingerprint = spec_fingerprint(spec)
        start = resume(workdir, fingerprint, net, optimizer)
        net.train()
        for step in range(start, hyper.steps):
            if should_stop():
                raise TrainingStopped
            picks = batch_indices(data.buckets, hyper.batch_size, step=step, seed=hyper.seed)
            generator = torch.Generator().manual_seed(_mix(hyper.seed, step))
            if family.flow_matching:
                loss = flow_matching_loss(
                    net, noise_scheduler, family, data, picks, generator, flip=hyper.flip_augment
                )
            else:
                loss = denoising_loss(
                    net,
                    noise_scheduler,
                    data,
                    picks,
                    generator,
                    snr_gamma=hyper.snr_gamma,
                    flip=hyper.flip_augment,
                )
            loss.backward()  # type: ignore[no-untyped-call]  # a gap in torch's annotations
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            report(TrainingProgress(step=step + 1, total_steps=hyper.steps, loss=loss.item()))
            plan = spec.sampling
            if on_sample is not None and plan is not None and step + 1 in plan.steps:
                on_sample(sample_round(pipe, spec, plan, step + 1, loss.item(), workdir))
            if _checkpoint_due(step + 1, hyper):
                save_checkpoint(workdir, step + 1, fingerprint, net, optimizer)
        return save_lora(pipe, family, workdir, metadata=spec.metadata)
    finally:
        net.eval()
        if family.flow_matching and on_gpu:
            net.disable_gradient_checkpointing()
            _text_encoders_to(pipe, net.device)
        net.unload_lora()  # the cached base goes back to exactly what was loaded


def training_scheduler(pipe: Pipeline, family: ModelFamily) -> Any:
    """The noise schedule trained on: DDPM from the base's scheduler config, or for the
    flow-matching families their own flow-matching schedule (its 1,000 training sigmas)."""
    from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler

    cls = FlowMatchEulerDiscreteScheduler if family.flow_matching else DDPMScheduler
    return cls.from_config(pipe.scheduler.config)


def _text_encoders_to(pipe: Pipeline, device: torch.device) -> None:
    for name in _TEXT_ENCODERS:
        if (encoder := getattr(pipe, name, None)) is not None:
            encoder.to(device)


# --- step 1: samples to latents and text embeddings, once ------------------------------------


@dataclass
class EncodedSamples:
    """What the loop needs of each sample, computed once by the frozen base. Latents are per
    sample: samples of different buckets have different sizes."""

    latent_mean: list[torch.Tensor]  # (C, h, w) float32, already times the VAE's scaling factor
    latent_std: list[torch.Tensor]
    prompt_embeds: torch.Tensor  # (N, tokens, width) in the UNet's dtype
    # SDXL: pooled text embeds and size/crop ids; SD3 and FLUX: pooled text embeds
    added_cond: dict[str, torch.Tensor] | None
    buckets: list[str]  # each sample's bucket ("WxH"): a batch never mixes two
    # The mirror images' latents (``flip_augment``), in the same order; None when off.
    flipped_mean: list[torch.Tensor] | None = None
    flipped_std: list[torch.Tensor] | None = None


def encode_samples(
    pipe: Pipeline, samples: Sequence[TrainingSample], *, resolution: int, flipped: bool = False
) -> EncodedSamples:
    import torch

    with torch.no_grad():
        fitted = [decode_to_bucket(s.image, resolution) for s in samples]
        pixels = [p for p, _ in fitted]
        mean, std = encode_latents(pipe, pixels)
        embeds, added = encode_captions(pipe, [s.caption for s in samples], [f for _, f in fitted])
        mirrored = encode_latents(pipe, [p.flip(-1) for p in pixels]) if flipped else None
    return EncodedSamples(
        mean,
        std,
        embeds,
        added,
        buckets=[str(f.bucket) for _, f in fitted],
        flipped_mean=mirrored[0] if mirrored else None,
        flipped_std=mirrored[1] if mirrored else None,
    )


def decode_to_bucket(data: bytes, resolution: int) -> tuple[torch.Tensor, Fit]:
    """An encoded picture as a (3, H, W) tensor in [-1, 1] at its bucket's size: scaled to cover
    the bucket and the overhang (a thin margin: the bucket's aspect ratio is the nearest one)
    cut evenly from both sides. Transparent pixels become white rather than Pillow's black."""
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGBA")
    flat = Image.new("RGB", image.size, "white")
    flat.paste(image, mask=image.getchannel("A"))
    how = fit(flat.width, flat.height, resolution)
    box = (how.left, how.top, how.left + how.bucket.width, how.top + how.bucket.height)
    fitted = flat.resize(how.scaled, Image.Resampling.LANCZOS).crop(box)
    pixels = torch.from_numpy(np.asarray(fitted, dtype=np.float32)).permute(2, 0, 1)
    return pixels / 127.5 - 1.0, how


def encode_latents(
    pipe: Pipeline, pixels: list[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Posterior mean and std of each picture, scaled into the UNet's latent space. One picture
    at a time caps memory at any resolution (and pictures differ in size); fp16 VAEs that ask
    for it are upcast to fp32 (the SDXL VAE overflows in fp16). SD3's and FLUX's VAEs also
    shift the latents (``shift_factor``) before scaling them."""
    import torch

    from loraforge.adapters.ml.pipelines import denoiser

    net = denoiser(pipe)
    vae, device = pipe.vae, net.device
    upcast = vae.dtype == torch.float16 and bool(vae.config.force_upcast)
    dtype = torch.float32 if upcast else vae.dtype
    vae.to(dtype)
    try:
        dists = [vae.encode(p[None].to(device, dtype)).latent_dist for p in pixels]
    finally:
        vae.to(net.dtype if upcast else dtype)
    scale = float(vae.config.scaling_factor)
    shift = float(getattr(vae.config, "shift_factor", None) or 0.0)
    mean = [(d.mean[0].float() - shift) * scale for d in dists]
    std = [d.std[0].float() * scale for d in dists]
    return mean, std


def encode_captions(
    pipe: Pipeline, captions: list[str], fits: list[Fit]
) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
    """Text embeddings as the pipeline computes them at generation (SDXL: both encoders'
    penultimate layers, the pooled embedding, and each picture's size/crop ids: its original
    size, the top-left of the kept window and the bucket, as SDXL was trained to read them;
    SD3 and FLUX: their CLIPs' pooled embedding and the T5 (with SD3's CLIPs) token embeddings)."""
    import torch
    from diffusers import FluxPipeline, StableDiffusion3Pipeline, StableDiffusionXLPipeline

    from loraforge.adapters.ml.pipelines import denoiser

    device = denoiser(pipe).device
    if isinstance(pipe, FluxPipeline):
        embeds, pooled, _ = pipe.encode_prompt(captions, None, device=device)
        return embeds, {"pooled_projections": pooled}
    if isinstance(pipe, StableDiffusion3Pipeline):
        embeds, _, pooled, _ = pipe.encode_prompt(
            captions, None, None, device=device, do_classifier_free_guidance=False
        )
        return embeds, {"pooled_projections": pooled}
    if not isinstance(pipe, StableDiffusionXLPipeline):
        embeds, _ = pipe.encode_prompt(captions, device, 1, do_classifier_free_guidance=False)
        return embeds, None
    embeds, _, pooled, _ = pipe.encode_prompt(
        prompt=captions, device=device, num_images_per_prompt=1, do_classifier_free_guidance=False
    )
    ids = [_size_and_crop_ids(f) for f in fits]
    time_ids = torch.tensor(ids, device=device, dtype=embeds.dtype)
    return embeds, {"text_embeds": pooled, "time_ids": time_ids}


def _size_and_crop_ids(how: Fit) -> list[int]:
    """SDXL's six micro-conditioning ids, (height, width) pairs: the picture as scaled, the
    window's top-left in it, and the target (bucket) size."""
    bucket = how.bucket
    return [how.scaled[1], how.scaled[0], how.top, how.left, bucket.height, bucket.width]


# --- step 2: the LoRA -------------------------------------------------------------------------


def add_lora(
    unet: UNet2DConditionModel,
    *,
    rank: int,
    alpha: int,
    seed: int,
    family: ModelFamily = ModelFamily.SD15,
) -> list[torch.nn.Parameter]:
    """Add the adapter (seeded init, without touching the global RNG) and return its
    parameters in fp32, as diffusers' ``cast_training_params`` does for half-precision bases.
    ``unet`` is the family's denoiser (SD3's and FLUX's transformer), ``family`` picks its
    layers (``LORA_TARGETS``)."""
    import torch
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        init_lora_weights="gaussian",
        target_modules=LORA_TARGETS[family],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(config, adapter_name=ADAPTER)
    cast_training_params(unet, dtype=torch.float32)
    return [p for p in unet.parameters() if p.requires_grad]


# --- step 3: one step's loss ------------------------------------------------------------------


def batch_indices(buckets: Sequence[str], batch_size: int, *, step: int, seed: int) -> list[int]:
    """Samples of ``step``. Each epoch shuffles every bucket's samples, cuts them into batches
    of at most ``batch_size`` (a batch never mixes buckets) and shuffles the batches, so every
    sample is seen once per epoch and the order depends only on (seed, step)."""
    per_epoch = sum(-(-len(m) // batch_size) for m in _bucket_members(buckets).values())
    epoch, offset = divmod(step, per_epoch)
    return epoch_batches(buckets, batch_size, epoch=epoch, seed=seed)[offset]


def epoch_batches(
    buckets: Sequence[str], batch_size: int, *, epoch: int, seed: int
) -> list[list[int]]:
    """The batches of one epoch, in the order they are trained (see ``batch_indices``)."""
    import torch

    batches: list[list[int]] = []
    for number, members in enumerate(_bucket_members(buckets).values()):
        draw = torch.Generator().manual_seed(_mix(seed, -1 - epoch) + number)
        shuffled = [members[i] for i in torch.randperm(len(members), generator=draw).tolist()]
        batches.extend(shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size))
    order = torch.randperm(
        len(batches), generator=torch.Generator().manual_seed(_mix(seed, -1 - epoch))
    )
    return [batches[i] for i in order.tolist()]


def _bucket_members(buckets: Sequence[str]) -> dict[str, list[int]]:
    """Sample indices by bucket, buckets in a fixed (sorted) order."""
    members: dict[str, list[int]] = {}
    for index, bucket in enumerate(buckets):
        members.setdefault(bucket, []).append(index)
    return dict(sorted(members.items()))


def denoising_loss(
    unet: UNet2DConditionModel,
    noise_scheduler: DDPMScheduler,
    data: EncodedSamples,
    picks: list[int],
    generator: torch.Generator,
    timesteps: torch.Tensor | None = None,
    snr_gamma: float | None = None,
    flip: bool = False,
) -> torch.Tensor:
    """Noise-prediction MSE on the picked samples (all of one bucket). Random draws come from
    ``generator`` on the CPU (the same numbers on every device); ``timesteps`` fixes t
    (held-out evaluation); ``snr_gamma`` weights each sample's error the Min-SNR way (None:
    unweighted); ``flip`` shows each sample mirrored or not, a coin toss per sample."""
    import torch
    import torch.nn.functional as F

    index = torch.tensor(picks)
    mean, std = _latents(data, picks, generator, flip=flip)
    latents = mean + std * torch.randn(mean.shape, generator=generator).to(mean.device)
    noise = torch.randn(mean.shape, generator=generator).to(mean.device)
    if timesteps is None:
        total = noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, total, (len(picks),), generator=generator)
    timesteps = timesteps.to(mean.device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    added = data.added_cond
    extra: dict[str, Any] = {}
    if added is not None:
        extra["added_cond_kwargs"] = {key: value[index] for key, value in added.items()}
    prediction = unet(noisy.to(unet.dtype), timesteps, data.prompt_embeds[index], **extra).sample
    error = F.mse_loss(prediction.float(), target.float(), reduction="none")
    per_sample = error.mean(dim=list(range(1, error.ndim)))
    if snr_gamma is not None:
        per_sample = per_sample * min_snr_weights(noise_scheduler, timesteps, snr_gamma)
    return per_sample.mean()


def flow_matching_loss(
    transformer: Any,
    noise_scheduler: Any,
    family: ModelFamily,
    data: EncodedSamples,
    picks: list[int],
    generator: torch.Generator,
    flip: bool = False,
) -> torch.Tensor:
    """The flow-matching loss of SD3 and FLUX on the picked samples, as diffusers' DreamBooth-
    LoRA scripts compute it: a sigma from the schedule's 1,000 training sigmas (t drawn
    uniformly for FLUX, logit-normally for SD3: their scripts' default weighting schemes, whose
    loss weights are then 1), the noisy latents (1 - sigma) x + sigma noise, and the MSE
    against the velocity noise - x. FLUX's transformer sees 2x2 patches of latents as tokens
    and, in dev, the guidance it is distilled for; SD3's prediction is preconditioned back to a
    picture (the script's ``--precondition_outputs``), so its target is x itself."""
    import torch
    from diffusers import FluxPipeline
    from diffusers.training_utils import compute_density_for_timestep_sampling

    index = torch.tensor(picks)
    mean, std = _latents(data, picks, generator, flip=flip)
    latents = mean + std * torch.randn(mean.shape, generator=generator).to(mean.device)
    noise = torch.randn(mean.shape, generator=generator).to(mean.device)
    scheme = "none" if family is ModelFamily.FLUX else "logit_normal"
    u = compute_density_for_timestep_sampling(
        scheme, len(picks), logit_mean=0.0, logit_std=1.0, generator=generator
    )
    indices = (u * noise_scheduler.config.num_train_timesteps).long()
    timesteps = noise_scheduler.timesteps[indices].to(mean.device)
    sigmas = noise_scheduler.sigmas[indices].to(mean.device).view(-1, 1, 1, 1)
    noisy = (1.0 - sigmas) * latents + sigmas * noise
    dtype = transformer.dtype
    embeds = data.prompt_embeds[index].to(dtype)
    added = data.added_cond
    assert added is not None
    pooled = added["pooled_projections"][index].to(dtype)
    if family is ModelFamily.FLUX:
        b, c, h, w = noisy.shape
        guidance = None
        if transformer.config.guidance_embeds:
            guidance = torch.full((b,), FLUX_TRAINING_GUIDANCE, device=mean.device)
        packed = transformer(
            hidden_states=FluxPipeline._pack_latents(noisy.to(dtype), b, c, h, w),
            timestep=timesteps / 1000,
            guidance=guidance,
            pooled_projections=pooled,
            encoder_hidden_states=embeds,
            txt_ids=torch.zeros(embeds.shape[1], 3, device=mean.device, dtype=dtype),
            img_ids=FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, mean.device, dtype),
            return_dict=False,
        )[0]
        # back to (b, c, h, w): sizes in latent units (a VAE scale factor of 1)
        prediction = FluxPipeline._unpack_latents(packed, h, w, 1).float()
        target = noise - latents
    else:
        prediction = transformer(
            hidden_states=noisy.to(dtype),
            timestep=timesteps,
            encoder_hidden_states=embeds,
            pooled_projections=pooled,
            return_dict=False,
        )[0].float()
        prediction = prediction * (-sigmas) + noisy
        target = latents
    loss: torch.Tensor = ((prediction - target.float()) ** 2).mean()
    return loss


def _latents(
    data: EncodedSamples, picks: list[int], generator: torch.Generator, *, flip: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The picked samples' latent mean and std, stacked; mirrored ones where a coin says so."""
    import torch

    if len({data.buckets[i] for i in picks}) != 1:
        raise ValueError("a batch mixes buckets")
    flipped_mean, flipped_std = data.flipped_mean, data.flipped_std
    if flip and (flipped_mean is None or flipped_std is None):
        raise ValueError("flip asked for, but the mirror images were not encoded")
    coins = (torch.rand(len(picks), generator=generator) < 0.5).tolist() if flip else []
    mirrored = {i for i, coin in zip(picks, coins, strict=False) if coin}  # none when off

    def one(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if i in mirrored and flipped_mean is not None and flipped_std is not None:
            return flipped_mean[i], flipped_std[i]
        return data.latent_mean[i], data.latent_std[i]

    pairs = [one(i) for i in picks]
    return torch.stack([m for m, _ in pairs]), torch.stack([d for _, d in pairs])


def min_snr_weights(
    noise_scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float
) -> torch.Tensor:
    """min(SNR, gamma) for the scheduler's target, as in diffusers' train_text_to_image."""
    from diffusers.training_utils import compute_snr

    snr: torch.Tensor = compute_snr(noise_scheduler, timesteps)
    capped = snr.clamp(max=gamma)
    if noise_scheduler.config.prediction_type == "v_prediction":
        return capped / (snr + 1)
    return capped / snr


def _mix(seed: int, salt: int) -> int:
    digest = hashlib.sha256(f"{seed}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


# --- step 4: checkpoints and resume -----------------------------------------------------------


def _checkpoint_due(done: int, hyper: Hyperparameters) -> bool:
    """Every ``checkpoint_every`` steps but the last, which the final weights replace."""
    every = hyper.checkpoint_every
    return every > 0 and done % every == 0 and done < hyper.steps


def spec_fingerprint(spec: TrainingSpec) -> str:
    """Identifies a training: a checkpoint of another spec in the same workdir is ignored."""
    h = hashlib.sha256()
    base = spec.base_model
    h.update(f"{base.name}|{base.family}|{base.path}|{spec.hyper!r}".encode())
    for sample in spec.samples:
        h.update(hashlib.sha256(sample.image).digest())
        h.update(sample.caption.encode() + b"\0")
    return h.hexdigest()


def save_checkpoint(
    workdir: Path,
    step: int,
    fingerprint: str,
    unet: UNet2DConditionModel,
    optimizer: torch.optim.Optimizer,
) -> None:
    """LoRA weights, optimizer state and step (the RNG state, see the module doc); written to a
    temporary name and renamed, so a crash never leaves a torn checkpoint. Older ones go."""
    import torch
    from peft import get_peft_model_state_dict

    state = {
        "fingerprint": fingerprint,
        "step": step,
        "lora": get_peft_model_state_dict(unet, adapter_name=ADAPTER),
        "optimizer": optimizer.state_dict(),
    }
    path = workdir / f"checkpoint-{step:07d}.pt"
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    for old in workdir.glob(_CHECKPOINT_GLOB):
        if old != path:
            old.unlink(missing_ok=True)


def resume(
    workdir: Path, fingerprint: str, unet: UNet2DConditionModel, optimizer: torch.optim.Optimizer
) -> int:
    """Load the latest checkpoint of this spec into the LoRA and optimizer; return its step
    (0 when there is none)."""
    import torch
    from peft import set_peft_model_state_dict

    checkpoints = sorted(workdir.glob(_CHECKPOINT_GLOB))
    if not checkpoints:
        return 0
    state = torch.load(checkpoints[-1], map_location=unet.device, weights_only=True)
    if state.get("fingerprint") != fingerprint:
        return 0
    set_peft_model_state_dict(unet, state["lora"], adapter_name=ADAPTER)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


# --- step 5: the artifact ---------------------------------------------------------------------


def save_lora(
    pipe: Pipeline, family: ModelFamily, workdir: Path, *, metadata: Mapping[str, str]
) -> Path:
    """Write the final LoRA (``write_lora``), then drop the checkpoints."""
    final = write_lora(pipe, family, workdir / FINAL_NAME, metadata=metadata)
    for checkpoint in workdir.glob(_CHECKPOINT_GLOB):
        checkpoint.unlink()
    return final


def write_lora(
    pipe: Pipeline, family: ModelFamily, path: Path, *, metadata: Mapping[str, str]
) -> Path:
    """Write the LoRA as it is now as diffusers does (``save_lora_weights``) with ``metadata``
    added to its ``__metadata__`` (diffusers reads only its own key there)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import get_peft_model_state_dict

    from loraforge.adapters.ml.lora_files import stamp
    from loraforge.adapters.ml.pipelines import denoiser, pipeline_class

    layers = get_peft_model_state_dict(denoiser(pipe), adapter_name=ADAPTER)
    if not family.flow_matching:  # SD3's and FLUX's scripts save peft's names as they are
        layers = convert_state_dict_to_diffusers(layers)
    staging = path.parent / f".{path.stem}"
    which = "transformer_lora_layers" if family.flow_matching else "unet_lora_layers"
    pipeline_class(family).save_lora_weights(
        save_directory=str(staging), safe_serialization=True, **{which: layers}
    )
    os.replace(staging / "pytorch_lora_weights.safetensors", path)
    staging.rmdir()
    if metadata:
        stamp(path, metadata)
    return path


# --- step 6: samples and checkpoints while it trains (issue 13 §2) ----------------------------


def sample_round(
    pipe: Pipeline, spec: TrainingSpec, plan: SamplePlan, step: int, loss: float, workdir: Path
) -> SampleRound:
    """The samples of ``step`` and, at a checkpoint step, the LoRA of that step as a file."""
    checkpoint = None
    if step in plan.checkpoint_steps:
        metadata = dict(spec.metadata)
        if "ss_steps" in metadata:
            metadata["ss_steps"] = str(step)  # what this file was trained for
        path = workdir / f"step-{step:07d}.safetensors"
        checkpoint = write_lora(pipe, spec.base_model.family, path, metadata=metadata)
    return SampleRound(
        step=step,
        loss=loss,
        samples=render_samples(pipe, spec.base_model, plan),
        checkpoint=checkpoint,
    )


def render_samples(pipe: Pipeline, base: BaseModel, plan: SamplePlan) -> list[RenderedSample]:
    """One PNG per prompt of ``plan`` with its fixed seed: what a prediction with the LoRA as it
    is now would give (``generator.render``, the predictions' own code, with the plan's size,
    steps and guidance and the base model's scheduler), from the cached base with the adapter
    attached (no copy of the model). The UNet is in eval mode meanwhile and back in training
    mode after; no gradients are recorded; the pipeline keeps its scheduler."""
    import torch
    from diffusers import FluxPipeline, StableDiffusion3Pipeline

    from loraforge.adapters.ml.generator import render
    from loraforge.adapters.ml.pipelines import denoiser

    unet, scheduler = denoiser(pipe), pipe.scheduler
    was_training = unet.training
    unet.eval()
    _text_encoders_to(pipe, unet.device)  # SD3's and FLUX's left the GPU while training
    pipe.set_progress_bar_config(disable=True)
    rendered = []
    try:
        with torch.no_grad():
            for position, prompt in enumerate(plan.prompts):
                seed = plan.seed_of(position)
                [image] = render(
                    pipe, _sample_spec(base, plan, prompt, seed), default_scheduler=scheduler
                )
                rendered.append(RenderedSample(position, prompt, seed, image))
    finally:
        pipe.scheduler = scheduler
        unet.train(was_training)
        if isinstance(pipe, StableDiffusion3Pipeline | FluxPipeline) and unet.training:
            _text_encoders_to(pipe, torch.device("cpu"))  # off the GPU again
    return rendered


def _sample_spec(base: BaseModel, plan: SamplePlan, prompt: str, seed: int) -> GenerationSpec:
    """The prediction a sample is: one PNG of ``prompt`` at the plan's size and settings."""
    return GenerationSpec(
        base_model=base,
        prompt=prompt,
        seed=seed,
        width=plan.resolution,
        height=plan.resolution,
        num_images=1,
        guidance_scale=plan.guidance_scale,
        num_inference_steps=plan.inference_steps,
        output_format="png",
    )
