"""**kern -> image: Verovio engraves one system, CairoSVG rasterises it to grayscale.

One system per image (``breaks: none``), the page as wide as the music and cropped to it, so an
image holds exactly the excerpt its transcription describes. Verovio's own log is switched off:
a piece it cannot engrave is reported by :func:`engrave` returning ``None``, which the metrics
count ("engravable fraction") and the corpus builder skips.
"""
from __future__ import annotations

import functools
import io

import numpy as np

from apps.vision.omr.kern import spine_error

#: Verovio's scale (percent of its default staff size): 40 gives ~10 px between staff lines
DEFAULT_SCALE = 40


def _toolkit(scale: int):
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()
    tk.setOptions({"breaks": "none", "adjustPageWidth": True, "adjustPageHeight": True, "header": "none",
                   "footer": "none", "scale": scale, "pageMarginLeft": 20, "pageMarginRight": 20,
                   "pageMarginTop": 20, "pageMarginBottom": 20})
    return tk


def engrave_svg(kern: str, scale: int = DEFAULT_SCALE) -> str | None:
    """The SVG of ``kern`` as one system, or None if Verovio cannot read it."""
    if spine_error(kern):  # Verovio aborts the whole process on ragged spines: never hand it those
        return None
    tk = _toolkit(scale)
    if not tk.loadData(kern) or tk.getPageCount() < 1:
        return None
    svg = tk.renderToSVG(1)
    return svg if "<svg" in svg else None


@functools.lru_cache(maxsize=1)
def _reader():
    return _toolkit(DEFAULT_SCALE)


def readable(kern: str) -> bool:
    """Whether Verovio reads ``kern`` into at least one page: the cheap half of engraving (~6 ms,
    no SVG), which a data module can afford for every record of a user's manifest."""
    if spine_error(kern):
        return False
    tk = _reader()
    return bool(tk.loadData(kern)) and tk.getPageCount() >= 1


def rasterize(svg: str) -> np.ndarray:
    """Grayscale uint8 [H, W] (255 = paper) of an SVG."""
    import cairosvg
    from PIL import Image

    png = cairosvg.svg2png(bytestring=svg.encode("utf-8"), background_color="white")
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


def engrave(kern: str, scale: int = DEFAULT_SCALE) -> np.ndarray | None:
    """Grayscale image of ``kern`` engraved as one system, or None if it cannot be engraved."""
    svg = engrave_svg(kern, scale)
    if svg is None:
        return None
    image = rasterize(svg)
    return image if (image < 128).any() else None  # nothing drawn: not music Verovio understood
