"""Text made safe for XML 1.0 (hOCR, ALTO): escaped, and stripped of the characters XML cannot hold."""

from __future__ import annotations

import re

# XML 1.0 allows tab, newline, carriage return, and U+0020..U+D7FF, U+E000..U+FFFD, U+10000 and up:
# anything else (other control characters, lone surrogates, U+FFFE/U+FFFF) cannot appear even escaped.
_FORBIDDEN = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# What a word never holds besides: DEL and the C1 controls, which XML allows but nothing displays.
_UNPRINTABLE = re.compile("[\x7f-\x9f]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"})


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 forbids (replaced by U+FFFD)."""
    return _FORBIDDEN.sub("\ufffd", text)


def printable_word(text: str) -> str:
    """A word's text as pages keep it: without whitespace, control characters or the characters XML 1.0
    forbids, so that every output carries the same words."""
    if text.isprintable() and " " not in text:
        # Nearly every word: no whitespace but the space, no control or unassigned character, no surrogate.
        return text
    return _UNPRINTABLE.sub("", _FORBIDDEN.sub("", "".join(text.split())))


def escape(text: str) -> str:
    """`text` for an XML element's content or a quoted attribute value."""
    return xml_safe(text).translate(_ESCAPES)
