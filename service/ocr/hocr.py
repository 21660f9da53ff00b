"""hOCR 1.2 (https://kba.github.io/hocr-spec/1.2/): a document's pages as XHTML, written page by page.

Every page is an `ocr_page`, with `ocr_carea` (a block), `ocr_par`, `ocr_line` and `ocrx_word`
elements inside, each with its `bbox`; words carry `x_wconf` where the page was OCRed. hOCR boxes
are whole pixels of the page image: an image document's own pixels, and for a PDF the pixels of its
pages at the job's `dpi` (given as `scan_res`). The capabilities listed are exactly those used.
"""

from __future__ import annotations

from service.ocr.layout import Box, blocks
from service.ocr.markup import escape
from service.ocr.result import PageResult

MEDIA_TYPE = "application/xhtml+xml"
CAPABILITIES = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"


def units(media_type: str, dpi: int) -> tuple[float, int | None]:
    """hOCR pixels per page unit, and the resolution to give as `scan_res`: an image document's pages
    are in its own pixels already; a PDF's points become pixels at the job's dpi."""
    if media_type == "application/pdf":
        return dpi / 72, dpi
    return 1.0, None


def head(*, pages: int, system: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n'
        "<head>\n<title></title>\n"
        '<meta http-equiv="Content-Type" content="application/xhtml+xml; charset=utf-8"/>\n'
        f'<meta name="ocr-system" content="{escape(system)}"/>\n'
        f'<meta name="ocr-capabilities" content="{CAPABILITIES}"/>\n'
        f'<meta name="ocr-number-of-pages" content="{pages}"/>\n'
        "</head>\n<body>\n"
    )


def tail() -> str:
    return "</body>\n</html>\n"


def page(result: PageResult, *, scale: float, scan_res: int | None) -> str:
    """One `ocr_page`: its boxes are the page's units times `scale` (pixels per unit), rounded."""
    n = result.number
    title = f"bbox 0 0 {round(result.width * scale)} {round(result.height * scale)}; ppageno {n - 1}"
    if scan_res:
        title += f"; scan_res {scan_res} {scan_res}"
    out = [f'<div class="ocr_page" id="page_{n}" title="{title}">\n']
    for block in blocks(result, scale):
        out.append(f'<div class="ocr_carea" id="block_{n}_{block.number}" title="{_bbox(block.box)}">\n')
        for par in block.parts:
            out.append(f'<p class="ocr_par" id="par_{n}_{par.number}" title="{_bbox(par.box)}">\n')
            for line in par.parts:
                out.append(f'<span class="ocr_line" id="line_{n}_{line.number}" title="{_bbox(line.box)}">')
                for index, (text, box, confidence) in enumerate(line.words, 1):
                    title = _bbox(box) + ("" if confidence is None else f"; x_wconf {confidence}")
                    space = " " if index > 1 else ""
                    out.append(
                        f'{space}<span class="ocrx_word" id="word_{n}_{line.number}_{index}" title="{title}">'
                        f"{escape(text)}</span>"
                    )
                out.append("</span>\n")
            out.append("</p>\n")
        out.append("</div>\n")
    out.append("</div>\n")
    return "".join(out)


def _bbox(box: Box) -> str:
    return "bbox " + " ".join(str(round(v)) for v in box)
