"""The ways to make a 2048 px display variant from a camera JPEG that issue 12 §6 names,
measured: ``python -m benchmarks.resize_options [--runs N]``.

For a photo-like JPEG and a zone plate (fine periodic patterns), each 4000x3000 (12 MP) and
6000x4000 (24 MP), it prints each option's output size, CPU milliseconds per image (decode +
resample, one thread, mean of ``--runs``) and PSNR against an exact Lanczos-3 resize (float)
of the fully decoded picture to the same size:

* ``pillow draft short-side`` - the path before libvips: ``draft("RGB", (2048, 2048))``
  (libjpeg's DCT scale chosen so both sides stay >= 2048, i.e. by the short side) and
  Lanczos over stripes of the decoded pixels;
* ``pillow draft long-side`` - ``draft`` with a box that only the long side must fill, then
  the same Lanczos;
* ``pillow half-scale decode`` - decoded at 1/2 scale and only resampled if still over 2048
  (a 4000x3000 photo becomes 2000x1500: "at most 2048", no resample);
* ``libvips full decode`` - the chosen path (``vips_resample``): libjpeg-turbo decode
  streamed into libvips' Lanczos-3 reducer;
* ``libvips shrink-on-load long-side`` - libvips decoding at the DCT scale the long side
  allows (1/2 for 6000x4000), then Lanczos-3.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence

from PIL import Image

from benchmarks import _images as images
from benchmarks._ingest_quality import (
    DISPLAY,
    decode,
    display_size,
    exact_lanczos,
    libvips_pixels,
    pillow_pixels,
    psnr,
    size_of,
)

Option = Callable[[bytes], Image.Image]


def draft_long_side(data: bytes) -> Image.Image:
    width, height = size_of(data)
    short = math.ceil(DISPLAY * min(width, height) / max(width, height))
    return pillow_pixels(data, (DISPLAY, short) if width >= height else (short, DISPLAY))


def half_scale(data: bytes) -> Image.Image:
    width, height = size_of(data)
    return pillow_pixels(data, (width // 2, height // 2))


def libvips_shrink_long_side(data: bytes) -> Image.Image:
    import pyvips

    width, height = size_of(data)
    shrink = next(s for s in (8, 4, 2, 1) if max(width, height) // s >= DISPLAY)
    loaded = pyvips.Image.jpegload_buffer(data, shrink=shrink, access="sequential")
    out = display_size((width, height))
    resized = loaded.resize(out[0] / loaded.width, vscale=out[1] / loaded.height)
    return Image.frombytes("RGB", out, resized.write_to_memory())


OPTIONS: dict[str, Option] = {
    "pillow draft short-side (before)": pillow_pixels,
    "pillow draft long-side": draft_long_side,
    "pillow half-scale decode": half_scale,
    "libvips full decode (chosen)": libvips_pixels,
    "libvips shrink-on-load long-side": libvips_shrink_long_side,
}


def _cpu_ms(option: Option, data: bytes, runs: int) -> float:
    option(data)  # warm-up
    started = time.process_time()
    for _ in range(runs):
        option(data)
    return (time.process_time() - started) * 1000 / runs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.resize_options")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per option and image")
    args = parser.parse_args(argv)
    import pyvips

    pyvips.cache_set_max(0)  # as vips_resample sets it: repeated runs must decode again
    pyvips.concurrency_set(1)
    print("| Image | Option | Output | CPU ms/image | PSNR dB |")
    print("|---|---|---|---|---|")
    for width, height in ((4000, 3000), (6000, 4000)):
        pictures = {
            "photo": images.encode_jpeg(
                images.photo(width, height, noise_sigma=10, seed=1), quality=90
            ),
            "zone plate": images.encode_jpeg(images.zone_plate(width, height), quality=95),
        }
        for kind, data in pictures.items():
            full, references = decode(data), {}
            for name, option in OPTIONS.items():
                result = option(data)
                if result.size not in references:
                    references[result.size] = exact_lanczos(full, result.size)
                score = psnr(result.convert("RGB"), references[result.size])
                cpu = _cpu_ms(option, data, args.runs)
                print(
                    f"| {kind} {width}x{height} | {name} | {result.width}x{result.height} "
                    f"| {cpu:.0f} | {score:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
