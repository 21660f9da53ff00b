"""Geometry of Tesseract's text-only PDF: bringing it back onto the page image it was read from."""

# PyMuPDF ships only partial annotations: calls into it are untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import math

import pymupdf


def unskew_text_layer(text_pdf: bytes, *, angle_deg: float, width_pt: float, height_pt: float) -> bytes:
    """The text layer of an image that was turned `angle_deg` (counter-clockwise) and grew to hold
    its corners, laid back onto the unturned image of `width_pt` x `height_pt`.

    Deskewing happens after orientation, so this keeps text_pdf in the frame searchable_pdf()
    expects: the page turned upright by a multiple of 90 degrees and nothing else.
    """
    with pymupdf.open(stream=text_pdf, filetype="pdf") as layer:
        skewed = layer[0].rect
        radians = math.radians(abs(angle_deg))
        cos, sin = math.cos(radians), math.sin(radians)
        # Turned back, the grown image's bounding box is centred on the original page; the layer is
        # fitted into exactly that box, so its scale is unchanged.
        box_width = skewed.width * cos + skewed.height * sin
        box_height = skewed.width * sin + skewed.height * cos
        cx, cy = width_pt / 2, height_pt / 2
        target = pymupdf.Rect(cx - box_width / 2, cy - box_height / 2, cx + box_width / 2, cy + box_height / 2)
        with pymupdf.open() as output:
            page = output.new_page(width=width_pt, height=height_pt)
            # show_pdf_page turns its source counter-clockwise: turn it back by -angle.
            page.show_pdf_page(target, layer, 0, rotate=-angle_deg)
            return bytes(output.tobytes(garbage=3, deflate=True))
