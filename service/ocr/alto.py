"""ALTO v4 (https://www.loc.gov/standards/alto/): a document's pages as XML, written page by page.

`Layout` holds one `Page` per page, its whole area one `PrintSpace`, and in it a `TextBlock` per
block, `TextLine`s, and `String`s (`CONTENT`, `HPOS`, `VPOS`, `WIDTH`, `HEIGHT`, and `WC`, the word's
confidence from 0 to 1, where the page was OCRed) with an `SP` between them. One measurement unit for
the document: `pixel` for an image document (its own pixels), `inch1200` for a PDF (its points times
1200/72), since ALTO has no unit for points.
"""

from __future__ import annotations

from service.ocr.layout import Box, blocks
from service.ocr.markup import escape
from service.ocr.result import PageResult

MEDIA_TYPE = "application/xml"
NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA = "http://www.loc.gov/alto/v4/alto-4-4.xsd"


def units(media_type: str) -> tuple[str, float]:
    """The document's MeasurementUnit, and how many of it make one unit of its pages."""
    if media_type == "application/pdf":
        return "inch1200", 1200 / 72
    return "pixel", 1.0


def head(*, unit: str, filename: str, system: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<alto xmlns="{NAMESPACE}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{NAMESPACE} {SCHEMA}">\n'
        "<Description>\n"
        f"<MeasurementUnit>{unit}</MeasurementUnit>\n"
        f"<sourceImageInformation><fileName>{escape(filename)}</fileName></sourceImageInformation>\n"
        '<Processing ID="processing_1"><processingSoftware>'
        f"<softwareName>{escape(system)}</softwareName>"
        "</processingSoftware></Processing>\n"
        "</Description>\n<Layout>\n"
    )


def tail() -> str:
    return "</Layout>\n</alto>\n"


def page(result: PageResult, *, scale: float) -> str:
    """One `Page`: positions are the page's units times `scale` (the document's unit per page unit)."""
    n = result.number
    width, height = _num(result.width * scale), _num(result.height * scale)
    out = [
        f'<Page ID="page_{n}" PHYSICAL_IMG_NR="{n}" WIDTH="{width}" HEIGHT="{height}">\n',
        f'<PrintSpace HPOS="0" VPOS="0" WIDTH="{width}" HEIGHT="{height}">\n',
    ]
    for block in blocks(result, scale):
        out.append(f'<TextBlock ID="block_{n}_{block.number}" {_position(block.box)}>\n')
        for par in block.parts:
            for line in par.parts:
                out.append(f'<TextLine ID="line_{n}_{line.number}" {_position(line.box)}>')
                previous: Box | None = None
                for index, (text, box, confidence) in enumerate(line.words, 1):
                    if previous is not None:
                        gap = max(0.0, box[0] - previous[2])
                        out.append(f'<SP WIDTH="{_num(gap)}" HPOS="{_num(previous[2])}" VPOS="{_num(previous[1])}"/>')
                    wc = "" if confidence is None else f' WC="{confidence / 100:.2f}"'
                    out.append(
                        f'<String ID="string_{n}_{line.number}_{index}" CONTENT="{escape(text)}" {_position(box)}{wc}/>'
                    )
                    previous = box
                out.append("</TextLine>\n")
        out.append("</TextBlock>\n")
    out.append("</PrintSpace>\n</Page>\n")
    return "".join(out)


def _position(box: Box) -> str:
    x0, y0, x1, y1 = box
    return f'HPOS="{_num(x0)}" VPOS="{_num(y0)}" WIDTH="{_num(x1 - x0)}" HEIGHT="{_num(y1 - y0)}"'


def _num(value: float) -> str:
    """A position as ALTO writes it (xsd:float): two decimals at most, no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")
