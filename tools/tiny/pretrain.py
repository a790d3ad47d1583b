"""Pretraining of the built-in ``tiny`` base model, from nothing, on procedural pictures.

``build_tiny`` runs four phases, each seeded, on the CPU:

1. a CLIP-format BPE tokenizer learnt from a caption corpus;
2. the autoencoder, on crops of procedural pictures (MSE plus a whisper of KL);
3. a pool of pictures encoded once into latents, with their captions;
4. the denoiser (UNet) and text encoder together, on v-prediction MSE with Min-SNR weights,
   10% of captions dropped so classifier-free guidance has an unconditional model, and an EMA
   of the weights kept for the result.

The result is saved as an fp16 diffusers folder (``StableDiffusionPipeline.from_pretrained``
loads it), then reloaded and measured by ``quality``. Reproducible for a given seed, thread
count and torch build.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline

from loraforge.adapters.ml.device import pin_threads
from loraforge.adapters.ml.tiny import TINY_RESOLUTION
from tools.tiny import quality
from tools.tiny.architecture import SCHEDULER_CONFIG, TinyParts, new_parts
from tools.tiny.procedural import caption, random_scene, render
from tools.tiny.tokenizer import learn_merges, write_clip_tokenizer

Log = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """How much of each phase ``steps`` buys."""

    autoencoder_steps: int
    pool_size: int
    denoiser_steps: int
    autoencoder_batch: int = 8
    autoencoder_crop: int = 64
    denoiser_batch: int = 12

    @classmethod
    def from_steps(cls, steps: int, autoencoder_steps: int | None = None) -> Plan:
        steps = max(1, steps)
        return cls(
            autoencoder_steps=max(1, autoencoder_steps or steps * 3 // 4),
            pool_size=min(max(steps, 32), 5000),
            denoiser_steps=steps,
        )


def build_tiny(
    out_dir: Path,
    *,
    steps: int,
    seed: int,
    log: Log,
    autoencoder_steps: int | None = None,
    autoencoder_from: Path | None = None,
) -> dict[str, float]:
    """Pretrain the tiny model into ``out_dir`` (a diffusers folder) and return its metrics.

    ``autoencoder_from`` (a saved ``vae/`` folder of an earlier build) skips phase 2: the
    autoencoder does not depend on the denoiser, so a denoiser change need not retrain it.
    """
    pin_threads()
    started = time.perf_counter()
    plan = Plan.from_steps(steps, autoencoder_steps)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = out_dir / "tokenizer"
    rng = np.random.default_rng(seed)
    corpus = [caption(random_scene(rng)) for _ in range(20_000)]
    write_clip_tokenizer(learn_merges(corpus, vocab_size=2000), tokenizer_dir)
    parts = new_parts(tokenizer_dir, seed=seed)
    log(f"tokenizer: {len(parts.tokenizer)} tokens")

    metrics: dict[str, float] = {}
    if autoencoder_from is None:
        metrics["autoencoder_loss"] = train_autoencoder(parts, plan, seed=seed + 1, log=log)
    else:
        parts.vae = AutoencoderKL.from_pretrained(str(autoencoder_from), dtype=torch.float32)
        log(f"autoencoder reused from {autoencoder_from}")
        metrics |= reused_autoencoder_metrics(autoencoder_from)
    latents, captions = encode_pool(parts, plan.pool_size, seed=seed + 2, log=log)
    metrics["denoiser_loss"] = train_denoiser(parts, latents, captions, plan, seed + 3, log)
    save_pipeline(parts, out_dir)

    pipe = StableDiffusionPipeline.from_pretrained(str(out_dir), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    metrics |= quality.measure(pipe, seed=seed + 4)
    quality.sample_sheet(pipe, seed=seed + 5).save(out_dir / "sample_sheet.png", optimize=True)
    metrics["wall_s"] = round(time.perf_counter() - started, 1)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log("metrics: " + json.dumps(metrics))
    return metrics


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 HWC pictures to a float NCHW batch in [-1, 1], the autoencoder's range."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return batch / 127.5 - 1.0


def _cosine(step: int, total: int, *, warmup: int, floor: float = 0.1) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def train_autoencoder(parts: TinyParts, plan: Plan, *, seed: int, log: Log) -> float:
    """Train the VAE on random crops of a rendered pool (crops are 16x cheaper than full
    pictures and the network is convolutional, so it sees the same scales)."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    pool = [
        render(random_scene(rng), TINY_RESOLUTION)
        for _ in range(min(512, 8 * plan.autoencoder_steps))
    ]
    vae, crop = parts.vae.train(), plan.autoencoder_crop
    with torch.no_grad():  # start with a narrow posterior: unit noise would drown the signal
        vae.quant_conv.bias[vae.config.latent_channels :] = -8.0
    optimizer = torch.optim.AdamW(vae.parameters(), lr=4e-4, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _cosine(s, plan.autoencoder_steps, warmup=50)
    )
    running = 0.0
    for step in range(plan.autoencoder_steps):
        picks = rng.integers(len(pool), size=plan.autoencoder_batch)
        corners = rng.integers(TINY_RESOLUTION - crop + 1, size=(plan.autoencoder_batch, 2))
        crops = [
            pool[i][y : y + crop, x : x + crop] for i, (y, x) in zip(picks, corners, strict=True)
        ]
        x = to_tensor(crops)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator=generator)).sample
        loss = F.mse_loss(recon, x) + 1e-6 * posterior.kl().mean()
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 200 == 0 or step == plan.autoencoder_steps - 1:
            log(f"autoencoder step {step + 1}/{plan.autoencoder_steps} loss {running:.4f}")
    vae.eval()
    return running


def reused_autoencoder_metrics(vae_dir: Path) -> dict[str, float]:
    """The reused autoencoder's training loss, from its build's metrics.json when there is one
    (a reused autoencoder is the same model, so its measurement still describes it)."""
    source = vae_dir.parent / "metrics.json"
    if not source.is_file():
        return {}
    loss = json.loads(source.read_text()).get("autoencoder_loss")
    return {} if loss is None else {"autoencoder_loss": float(loss)}


@torch.inference_mode()
def encode_pool(
    parts: TinyParts, count: int, *, seed: int, log: Log
) -> tuple[torch.Tensor, list[str]]:
    """Render ``count`` captioned pictures and encode them once; set the latent scale so the
    denoiser sees unit variance (what ``scaling_factor`` is for)."""
    rng = np.random.default_rng(seed)
    scenes = [random_scene(rng) for _ in range(count)]
    chunks = []
    for start in range(0, count, 32):
        images = [render(scene, TINY_RESOLUTION) for scene in scenes[start : start + 32]]
        chunks.append(parts.vae.encode(to_tensor(images)).latent_dist.mean)
    latents = torch.cat(chunks)
    parts.vae.register_to_config(scaling_factor=round(1.0 / latents.std().item(), 5))
    log(f"encoded {count} pictures; latent scale {parts.vae.config.scaling_factor}")
    return latents * parts.vae.config.scaling_factor, [caption(scene) for scene in scenes]


def train_denoiser(
    parts: TinyParts, latents: torch.Tensor, captions: list[str], plan: Plan, seed: int, log: Log
) -> float:
    """Train UNet and text encoder together; keep an EMA of both for the result."""
    generator = torch.Generator().manual_seed(seed)
    noise_scheduler = DDPMScheduler(
        **{
            k: SCHEDULER_CONFIG[k]
            for k in (
                "num_train_timesteps",
                "beta_schedule",
                "beta_start",
                "beta_end",
                "prediction_type",
            )
        }
    )
    snr = noise_scheduler.alphas_cumprod / (1 - noise_scheduler.alphas_cumprod)
    ids = _token_ids(parts, captions)
    empty = _token_ids(parts, [""])[0]
    unet, text_encoder = parts.unet.train(), parts.text_encoder.train()
    params = [*unet.parameters(), *text_encoder.parameters()]
    ema = [p.detach().clone() for p in params]
    optimizer = torch.optim.AdamW(params, lr=4e-4, weight_decay=1e-2)
    total = plan.denoiser_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _cosine(s, total, warmup=100))
    running = 0.0
    for step in range(total):
        pick = torch.randint(len(captions), (plan.denoiser_batch,), generator=generator)
        batch_ids = ids[pick].clone()
        batch_ids[torch.rand(len(pick), generator=generator) < 0.1] = empty  # caption dropout
        clean = latents[pick]
        noise = torch.randn(clean.shape, generator=generator)
        t = torch.randint(
            noise_scheduler.config.num_train_timesteps, (len(pick),), generator=generator
        )
        noisy = noise_scheduler.add_noise(clean, noise, t)
        target = noise_scheduler.get_velocity(clean, noise, t)
        prediction = unet(noisy, t, text_encoder(batch_ids)[0]).sample
        weights = torch.clamp(snr[t], max=5.0) / (snr[t] + 1)  # Min-SNR-5 for v-prediction
        loss = (
            weights * F.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3))
        ).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            decay = min(0.999, (1 + step) / (10 + step))
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        running = 0.99 * running + 0.01 * loss.item() if step else loss.item()
        if step % 200 == 0 or step == total - 1:
            log(f"denoiser step {step + 1}/{total} loss {running:.4f}")
    with torch.no_grad():
        for param, averaged in zip(params, ema, strict=True):
            param.copy_(averaged)
    unet.eval()
    text_encoder.eval()
    return running


def _token_ids(parts: TinyParts, captions: list[str]) -> torch.Tensor:
    tokens = parts.tokenizer(
        captions,
        padding="max_length",
        max_length=parts.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return tokens.input_ids  # type: ignore[no-any-return]


def save_pipeline(parts: TinyParts, out_dir: Path) -> None:
    """Save as an fp16 diffusers folder: half the bytes, and loaders upcast to what they need."""
    pipe = StableDiffusionPipeline(
        vae=parts.vae,
        text_encoder=parts.text_encoder,
        tokenizer=parts.tokenizer,
        unet=parts.unet,
        scheduler=parts.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(torch.float16)
    pipe.save_pretrained(str(out_dir), safe_serialization=True)
    normalise_configs(out_dir)


def normalise_configs(out_dir: Path) -> None:
    """Drop what depends on where the build ran: the source path a reused autoencoder records
    (``_name_or_path``) and the tokenizer's hub setting (it never needs the hub)."""
    for config in out_dir.glob("*/*config.json"):
        values = json.loads(config.read_text())
        values.pop("_name_or_path", None)
        if "local_files_only" in values:
            values["local_files_only"] = True
        config.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
