"""Procedurally drawn, captioned pictures: the tiny model's whole world.

A ``Scene`` is one coloured shape on a plain background, optionally patterned; ``render`` draws
it with numpy (2x supersampled so edges are anti-aliased) and ``caption`` describes it in the
words the tiny model learns, e.g. "a red circle on a blue background, striped". Every scene is
drawn from a seeded ``numpy.random.Generator``, so datasets are reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (245, 215, 30),
    "orange": (245, 135, 20),
    "purple": (130, 50, 180),
    "pink": (245, 125, 185),
    "cyan": (40, 205, 225),
    "brown": (120, 70, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle", "diamond")
PATTERNS = ("plain", "striped", "dotted", "checkered", "grainy")
"""Fills of the shape: a second colour in stripes, dots or checks, or a grainy texture."""

Grid = NDArray[np.floating[Any]]  # per-pixel coordinates
_SUPERSAMPLE = 2
_GRAINS = 96  # grain cells across the side
_BACKGROUND_MENTIONED = 0.8  # the rest are captioned without their background ("a red square")


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    background: str
    pattern: str
    cx: float  # centre, as a fraction of the side
    cy: float
    radius: float  # circumradius, as a fraction of the side
    angle: float  # rotation of the shape, radians
    period: float  # pattern period, as a fraction of the side
    pattern_angle: float  # radians
    noise_seed: int  # for the grainy texture
    mention_background: bool


def random_scene(
    rng: np.random.Generator,
    *,
    shape: str | None = None,
    colour: str | None = None,
    background: str | None = None,
    pattern: str | None = None,
) -> Scene:
    """A random scene; any of the named attributes can be fixed (e.g. "red striped squares")."""
    names = list(COLOURS)
    colour = colour or names[int(rng.integers(len(names)))]
    if background is None:
        others = [name for name in names if name != colour]
        background = others[int(rng.integers(len(others)))]
    return Scene(
        shape=shape or SHAPES[int(rng.integers(len(SHAPES)))],
        colour=colour,
        background=background,
        pattern=pattern or PATTERNS[int(rng.integers(len(PATTERNS)))],
        cx=float(rng.uniform(0.38, 0.62)),
        cy=float(rng.uniform(0.38, 0.62)),
        radius=float(rng.uniform(0.30, 0.46)),
        angle=float(rng.uniform(-0.35, 0.35)),
        period=float(rng.uniform(0.06, 0.12)),
        pattern_angle=float(rng.uniform(0.0, math.pi)),
        noise_seed=int(rng.integers(2**31)),
        mention_background=bool(rng.random() < _BACKGROUND_MENTIONED),
    )


def caption(scene: Scene) -> str:
    text = f"{_article(scene.colour)} {scene.colour} {scene.shape}"
    if scene.mention_background:
        text += f" on {_article(scene.background)} {scene.background} background"
    if scene.pattern != "plain":
        text += f", {scene.pattern}"
    return text


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def render(scene: Scene, size: int) -> NDArray[np.uint8]:
    """The scene as an RGB ``size`` x ``size`` uint8 array."""
    side = size * _SUPERSAMPLE
    axis = (np.arange(side, dtype=np.float32) + 0.5) / side
    x, y = np.meshgrid(axis - scene.cx, axis - scene.cy)
    cos, sin = math.cos(scene.angle), math.sin(scene.angle)
    u, v = cos * x + sin * y, -sin * x + cos * y
    inside = _shape_mask(scene.shape, u, -v, scene.radius)  # -v: image rows grow downwards

    canvas = np.empty((side, side, 3), dtype=np.float32)
    canvas[:] = COLOURS[scene.background]
    fill = _fill(scene, x, y)
    canvas[inside] = fill[inside]
    pooled = canvas.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    pixels: NDArray[np.uint8] = np.clip(np.rint(pooled), 0, 255).astype(np.uint8)
    return pixels


def _shape_mask(shape: str, u: Grid, v: Grid, r: float) -> NDArray[np.bool_]:
    if shape == "circle":
        return np.asarray(u * u + v * v <= r * r)
    if shape == "square":
        return np.asarray(np.maximum(np.abs(u), np.abs(v)) <= r * 0.8)
    if shape == "diamond":
        return np.asarray(np.abs(u) + np.abs(v) <= r * 1.1)
    if shape == "triangle":  # equilateral, apex up: inside all three edges (inradius r / 2)
        inside = v >= -r / 2
        for normal in (math.radians(30), math.radians(150)):
            inside &= u * math.cos(normal) + v * math.sin(normal) <= r / 2
        return np.asarray(inside)
    raise ValueError(f"unknown shape {shape!r}")


def _fill(scene: Scene, x: Grid, y: Grid) -> NDArray[np.float32]:
    """The shape's pixels: its colour, with the pattern's second colour or texture applied."""
    base = np.empty((*x.shape, 3), dtype=np.float32)
    base[:] = COLOURS[scene.colour]
    if scene.pattern == "grainy":
        # Grain of a few pixels: coarse enough to survive the autoencoder's 8x downsampling.
        grain = max(1, x.shape[0] // _GRAINS)
        cells = -(-x.shape[0] // grain)
        noise = np.random.default_rng(scene.noise_seed).normal(1.0, 0.2, (cells, cells))
        noise = np.repeat(np.repeat(noise, grain, axis=0), grain, axis=1)[
            : x.shape[0], : x.shape[1]
        ]
        return np.asarray(base * noise[..., None].astype(np.float32))
    if scene.pattern == "plain":
        return base
    cos, sin = math.cos(scene.pattern_angle), math.sin(scene.pattern_angle)
    a, b = (cos * x + sin * y) / scene.period, (-sin * x + cos * y) / scene.period
    if scene.pattern == "striped":
        second = np.asarray((a % 1.0) < 0.5)
    elif scene.pattern == "checkered":
        second = np.asarray((np.floor(a) + np.floor(b)) % 2 == 1)
    elif scene.pattern == "dotted":
        second = np.asarray((a % 1.0 - 0.5) ** 2 + (b % 1.0 - 0.5) ** 2 <= 0.3**2)
    else:
        raise ValueError(f"unknown pattern {scene.pattern!r}")
    base[second] = _contrast(scene.colour)
    return base


def _contrast(colour: str) -> tuple[int, int, int]:
    """White on dark colours, black on light ones, so patterns always show."""
    r, g, b = COLOURS[colour]
    return COLOURS["black"] if 0.299 * r + 0.587 * g + 0.114 * b > 150 else COLOURS["white"]


def draw_dataset(
    count: int, *, seed: int, size: int, **fixed: str
) -> list[tuple[NDArray[np.uint8], str]]:
    """``count`` (image, caption) pairs; ``fixed`` pins scene attributes (shape="square", …)."""
    rng = np.random.default_rng(seed)
    scenes = [random_scene(rng, **fixed) for _ in range(count)]
    return [(render(scene, size), caption(scene)) for scene in scenes]
