"""How good the tiny model is: autoencoder fidelity, prompt following, and a sample sheet."""

from __future__ import annotations

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from loraforge.adapters.ml.tiny import TINY_RESOLUTION
from tools.tiny.procedural import COLOURS, draw_dataset

_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32) / 255.0
_NAMES = list(COLOURS)
SHEET_PROMPTS = (
    "a red square",
    "a blue circle",
    "a yellow triangle on a purple background",
    "a green diamond on a white background",
    "a red circle on a blue background, striped",
    "an orange square on a black background, dotted",
    "a white circle on a green background, checkered",
    "a pink triangle, grainy",
    "a cyan diamond on a brown background",
    "a black square on a yellow background",
    "a purple circle on an orange background, striped",
    "a gray triangle on a red background",
)


def measure(pipe: StableDiffusionPipeline, *, seed: int) -> dict[str, float]:
    mse = reconstruction_mse(pipe, seed=seed)
    shapes = [_generate(pipe, f"a {name} square", seed, TINY_RESOLUTION) for name in _NAMES]
    scenes = [
        (name, background, _generate(pipe, f"a {name} circle on a {background} background", seed))
        for name, background in zip(_NAMES, _NAMES[3:] + _NAMES[:3], strict=True)
    ]
    red_512 = _generate(pipe, "a red square", seed, 512)
    return {
        "vae_reconstruction_mse": round(mse, 5),
        "vae_reconstruction_psnr_db": round(float(-10 * np.log10(mse)), 2),
        "red_square_red_fraction": round(_share(shapes[_NAMES.index("red")], "red"), 3),
        "red_square_red_fraction_512": round(_share(red_512, "red"), 3),
        "colour_prompt_dominant_accuracy": _mean(
            _dominant(img) == n for n, img in zip(_NAMES, shapes, strict=True)
        ),
        "object_colour_accuracy": _mean(_dominant(_centre(img)) == n for n, _, img in scenes),
        "background_colour_accuracy": _mean(_dominant(_border(img)) == b for _, b, img in scenes),
    }


@torch.inference_mode()
def reconstruction_mse(pipe: StableDiffusionPipeline, *, seed: int, count: int = 32) -> float:
    """Mean squared error (pixels in [0, 1]) of encode → decode on unseen procedural pictures."""
    images = np.stack([image for image, _ in draw_dataset(count, seed=seed, size=TINY_RESOLUTION)])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    recon = torch.cat(
        [pipe.vae.decode(pipe.vae.encode(c).latent_dist.mean).sample for c in torch.split(x, 8)]
    )
    return float((((recon.clamp(-1, 1) - x) / 2) ** 2).mean())


def _generate(
    pipe: StableDiffusionPipeline, prompt: str, seed: int, size: int = TINY_RESOLUTION
) -> NDArray[np.float32]:
    result = pipe(
        prompt,
        height=size,
        width=size,
        num_inference_steps=20,
        guidance_scale=7.5,
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
    )
    return np.asarray(result.images[0], dtype=np.float32)


def _nearest(image: NDArray[np.float32]) -> NDArray[np.intp]:
    pixels = image.reshape(-1, 3)
    return np.asarray(((pixels[:, None, :] - _PALETTE[None]) ** 2).sum(-1).argmin(-1))


def _share(image: NDArray[np.float32], name: str) -> float:
    """Fraction of pixels whose nearest palette colour is ``name``."""
    return float((_nearest(image) == _NAMES.index(name)).mean())


def _dominant(image: NDArray[np.float32]) -> str:
    return _NAMES[int(np.bincount(_nearest(image), minlength=len(_NAMES)).argmax())]


def _centre(image: NDArray[np.float32]) -> NDArray[np.float32]:
    h, w = image.shape[:2]
    return image[h * 2 // 5 : h * 3 // 5, w * 2 // 5 : w * 3 // 5]


def _border(image: NDArray[np.float32]) -> NDArray[np.float32]:
    edge = max(1, image.shape[0] // 16)
    return np.concatenate([image[:edge].reshape(-1, 3), image[-edge:].reshape(-1, 3)])


def _mean(flags: object) -> float:
    values = [bool(flag) for flag in flags]  # type: ignore[attr-defined]
    return round(sum(values) / len(values), 3)


def sample_sheet(pipe: StableDiffusionPipeline, *, seed: int, tile: int = 128) -> Image.Image:
    """A 4 x 3 grid of generations for ``SHEET_PROMPTS``, each labelled with its prompt."""
    label = 12
    sheet = Image.new("RGB", (4 * tile, 3 * (tile + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, prompt in enumerate(SHEET_PROMPTS):
        pixels = (_generate(pipe, prompt, seed) * 255).round().astype(np.uint8)
        x, y = (index % 4) * tile, (index // 4) * (tile + label)
        sheet.paste(Image.fromarray(pixels).resize((tile, tile), Image.Resampling.LANCZOS), (x, y))
        draw.text((x + 2, y + tile), prompt[:24], fill="black")
    return sheet
