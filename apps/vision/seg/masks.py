"""Per-pixel classes of an engraved score, read from the element classes of Verovio's SVG.

Verovio writes every symbol as a ``<g class="...">`` group (``note`` > ``notehead``/``stem``/
``accid``, ``beam``, ``rest``, ``clef``, ``barLine`` ...; the five staff lines are the ``<path>``
children of ``<g class="staff">``). Each drawing element (path, use, rect, polygon, text ...) takes
the class of its innermost classified group (:data:`SVG_CLASSES`). The SVG is then rasterised once
per class present with every other drawing element removed, through the same
CairoSVG call at the same size as the image (:func:`apps.vision.omr.engrave.rasterize`).

A pixel is labelled where the *real* image has ink (darker than :data:`INK_BELOW`, so the mask's
foreground is exactly the image's ink, thin antialiased staff lines included). Its class is the one
of highest precedence (:data:`CLASSES` order: later wins) among the classes whose own rendering
covers at least half of the pixel's ink, so a notehead drawn over a staff line is a notehead and a
stem's faint antialiased fringe does not claim a staff-line pixel; when no class covers half (ink
from several thin strokes), the darkest one wins.
"""
from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from apps.vision.omr.engrave import rasterize

#: label id = position; later classes win where symbols overlap (precedence, low to high)
CLASSES = (
    "background",
    "staff_line",      # the five lines of a staff
    "ledger_line",     # short lines above/below a staff
    "barline",         # barlines, and the line that opens a system
    "other",           # brackets and braces, articulations, fermatas, tuplets ...: ink of no class below
    "text",            # <text>: directions, tempo, dynamics, lyrics, fingering, measure numbers
    "tie_slur",
    "stem",
    "beam",
    "flag",
    "rest",            # rest, whole-measure and multi-measure rests
    "time_signature",
    "key_signature",
    "clef",
    "notehead",
    "dot",             # augmentation dots
    "accidental",      # accidentals on notes (key signatures are key_signature)
)
CLASS_ID = {name: i for i, name in enumerate(CLASSES)}

#: Verovio group class -> our class; the innermost group a drawing element sits in decides
SVG_CLASSES = {
    "ledgerLines": "ledger_line",
    "barLine": "barline",
    "grpSym": "other", "brace": "other", "bracket": "other", "artic": "other", "fermata": "other",
    "tuplet": "other", "tupletNum": "other", "tupletBracket": "other", "trill": "other", "mordent": "other",
    "turn": "other", "arpeg": "other", "octave": "other", "pedal": "other", "hairpin": "other",
    "breath": "other", "caesura": "other",
    "dir": "text", "tempo": "text", "dynam": "text", "harm": "text", "verse": "text", "syl": "text",
    "label": "text", "labelAbbr": "text", "fing": "text", "mNum": "text", "reh": "text", "ending": "text",
    "tie": "tie_slur", "slur": "tie_slur", "lv": "tie_slur",
    "stem": "stem",
    "beam": "beam", "fTrem": "beam", "bTrem": "beam",
    "flag": "flag",
    "rest": "rest", "mRest": "rest", "multiRest": "rest", "mRpt": "rest",
    "meterSig": "time_signature", "meterSigGrp": "time_signature",
    "keySig": "key_signature", "keyAccid": "key_signature",
    "clef": "clef",
    "note": "notehead", "notehead": "notehead",
    "dots": "dot", "dot": "dot",
    "accid": "accidental",
}
#: elements that put ink on the page (a <text> is one element with its tspans)
DRAWING = {"path", "use", "rect", "ellipse", "circle", "polygon", "polyline", "line", "text"}
#: darker than this (0 = black, 255 = paper) is ink: staff lines at the default scale are ~120-190
INK_BELOW = 200
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"


def _tag(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1]


def _classes(el: ET.Element) -> list[str]:
    return (el.get("class") or "").split()


def element_classes(root: ET.Element) -> list[tuple[ET.Element, str]]:
    """Every drawing element of the page with its class (glyph definitions in <defs> excluded:
    they are drawn by the <use> elements that reference them)."""
    found: list[tuple[ET.Element, str]] = []

    def walk(el: ET.Element, inherited: str) -> None:
        for child in el:
            tag = _tag(child)
            if tag in ("defs", "style", "desc", "title", "metadata") or "placeholder" in _classes(child):
                continue  # not drawn (Verovio's CSS hides placeholders)
            own = next((SVG_CLASSES[c] for c in _classes(child) if c in SVG_CLASSES), None)
            if tag in DRAWING:
                if own is not None:
                    label = own
                elif tag == "path" and "staff" in _classes(el):
                    label = "staff_line"
                elif tag == "path" and "system" in _classes(el):
                    label = "barline"  # the line that opens a system of several staves
                elif tag == "text" and inherited == "other":
                    label = "text"
                else:
                    label = inherited
                found.append((child, label))
            else:
                walk(child, own or inherited)

    walk(root, "other")
    return found


_LABEL_ATTR = "data-seg-class"


def _only(root: ET.Element, name: str) -> ET.Element:
    """A copy of the page without the drawing elements of other classes (CairoSVG ignores
    ``opacity`` on ``<use>``, so they are removed; coordinates are absolute, nothing moves)."""
    page = copy.deepcopy(root)
    for parent in page.iter():
        for child in list(parent):
            label = child.get(_LABEL_ATTR)
            if label is not None and label != name:
                parent.remove(child)
    return page


@dataclass
class Layers:
    """The image and the ink each class draws on its own (darkness 0-255, [H, W])."""

    image: np.ndarray
    ink: dict[str, np.ndarray]


def class_layers(svg: str) -> Layers:
    """The grayscale image of ``svg`` exactly as :func:`~apps.vision.omr.engrave.rasterize` makes it,
    and one darkness map per class present."""
    ET.register_namespace("", SVG_NS)
    ET.register_namespace("xlink", XLINK_NS)
    image = rasterize(svg)
    root = ET.fromstring(svg)
    present = set()
    for el, label in element_classes(root):
        el.set(_LABEL_ATTR, label)
        present.add(label)
    ink: dict[str, np.ndarray] = {}
    for name in CLASSES[1:]:
        if name not in present:
            continue
        alone = rasterize(ET.tostring(_only(root, name), encoding="unicode"))
        if alone.shape != image.shape:  # cannot happen for one SVG; guard the alignment contract
            raise RuntimeError(f"class {name} rendered at {alone.shape}, the image at {image.shape}")
        ink[name] = 255 - alone.astype(np.int16)
    return Layers(image, ink)


def label_mask(layers: Layers) -> np.ndarray:
    """uint8 [H, W] class ids (:data:`CLASSES`) from :func:`class_layers`; see the module docstring."""
    image = layers.image
    mask = np.zeros(image.shape, np.uint8)
    if not layers.ink:
        return mask
    darkness = 255 - image.astype(np.int16)
    foreground = image < INK_BELOW
    names = [n for n in CLASSES[1:] if n in layers.ink]  # precedence order, low to high
    stack = np.stack([layers.ink[n] for n in names])      # [K, H, W]
    covers = 2 * stack >= darkness[None]                   # the class alone draws half the pixel's ink
    ranks = np.arange(1, len(names) + 1)[:, None, None]
    best_covering = np.where(covers, ranks, 0).max(0)      # highest-precedence covering class, 0 if none
    darkest = stack.argmax(0) + 1
    chosen = np.where(best_covering > 0, best_covering, darkest)
    ids = np.array([0] + [CLASS_ID[n] for n in names], np.uint8)
    mask[foreground] = ids[chosen[foreground]]
    return mask


def engrave_with_mask(svg: str) -> tuple[np.ndarray, np.ndarray]:
    """(grayscale image, label mask) of one engraved SVG, pixel for pixel aligned."""
    layers = class_layers(svg)
    return layers.image, label_mask(layers)
