"""Writing what a stage shows: figures, tables, metrics, image grids and animations.

Everything is written under `reports/` as files that open offline (PNG/SVG, CSV/Markdown,
JSON, GIF), and returned in a form a notebook can display.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image


def _parent(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(fig: Any, folder: str | Path, name: str, svg: bool = True) -> Path:
    """Save a matplotlib figure as `folder/name.png` (and `.svg`); returns the PNG path."""
    png = _parent(Path(folder) / f"{name}.png")
    fig.savefig(png, dpi=110, bbox_inches="tight")
    if svg:
        fig.savefig(png.with_suffix(".svg"), bbox_inches="tight")
    return png


def save_table(df: Any, folder: str | Path, name: str, floatfmt: str = ".3f") -> Path:
    """Save a pandas DataFrame as `folder/name.csv` and `folder/name.md`; returns the CSV path."""
    csv = _parent(Path(folder) / f"{name}.csv")
    df.to_csv(csv, index=True)
    csv.with_suffix(".md").write_text(df.to_markdown(floatfmt=floatfmt) + "\n")
    return csv


def save_metrics(path: str | Path, metrics: dict[str, Any]) -> Path:
    """Write a DVC metrics file (JSON, sorted keys, numpy scalars converted)."""
    def plain(x: Any) -> Any:
        if isinstance(x, dict):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, np.generic):
            return x.item()
        return x

    path = _parent(path)
    path.write_text(json.dumps(plain(metrics), indent=2, sort_keys=True) + "\n")
    return path


def tile(images: np.ndarray, cols: int | None = None, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """Arrange images (N,H,W,3) uint8 in a grid (rows*(H+pad)-pad, cols*(W+pad)-pad, 3)."""
    n, h, w, _ = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, 3), pad_value, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = img
    return grid


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of (..., H, W, 3), so small frames stay crisp when shown."""
    return image.repeat(factor, axis=-3).repeat(factor, axis=-2)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Save an (H,W,3) uint8 image as an optimised PNG."""
    path = _parent(path)
    Image.fromarray(image).save(path, optimize=True)
    return path


def save_gif(frames: np.ndarray, path: str | Path, fps: float = 10.0) -> Path:
    """Save a (T,H,W,3) uint8 clip as a looping GIF with a short pause on the last frame."""
    path = _parent(path)
    pics = [Image.fromarray(f) for f in frames]
    durations = [int(1000 / fps)] * (len(pics) - 1) + [800]
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=durations, loop=0,
                 optimize=True, disposal=1)
    return path


def show_file(path: str | Path) -> Any:
    """An IPython display object for a PNG or GIF file (embeds it in the executed notebook)."""
    from IPython.display import Image as IPyImage

    return IPyImage(data=Path(path).read_bytes(), format=Path(path).suffix[1:])


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (robust at 0 and 1, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def stack_clips(clips: Sequence[np.ndarray], cols: int, pad: int = 1) -> np.ndarray:
    """Tile several (T,H,W,3) clips into one (T',H',W',3) clip; shorter ones hold their last frame."""
    t = max(len(c) for c in clips)
    held = [np.concatenate([c, np.repeat(c[-1:], t - len(c), axis=0)]) for c in clips]
    return np.stack([tile(np.stack([c[i] for c in held]), cols, pad) for i in range(t)])
