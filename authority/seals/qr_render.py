"""Drawing a QR seal's URL as a QR code (ISO/IEC 18004), PNG or SVG, with segno.

Error correction is level M (ISO/IEC 18004 §7.5.1: about 15 % of the
codewords may be lost), never raised silently, so the symbol version the
documentation promises is the one drawn. The data is coded in the fewest
modules among:

- one alphanumeric segment (§7.4.4), when the whole URL is in that set, which
  :func:`authority.seals.qr.qr_url` arranges for an issuer that is only a
  scheme, host and port;
- a byte segment (§7.4.5) for the URL's head and an alphanumeric segment for
  its tail (the payload), when the issuer must keep its case;
- one byte segment, for anything else.

Every symbol has the quiet zone of 4 modules §6.3.8 asks for.
"""

from __future__ import annotations

import io
from typing import Any, cast

import segno
from segno import consts

from authority.seals.qr import QR_ALPHANUMERIC

ERROR_CORRECTION = "m"
QUIET_ZONE = 4  # modules, ISO/IEC 18004 §6.3.8
PNG_SCALE = 8  # pixels a module: a version 12 symbol (65 modules) is 584 px with its border
SVG_SCALE = 4
#: A shorter alphanumeric tail does not repay the cost of a second segment header.
_MIN_TAIL = 16


def _candidates(url: str) -> list[list[tuple[str, int]]]:
    """The segmentations worth trying for ``url``: lists of (text, segno mode constant)."""
    if all(c in QR_ALPHANUMERIC for c in url):
        return [[(url, consts.MODE_ALPHANUMERIC)]]
    head = len(url)
    while head > 0 and url[head - 1] in QR_ALPHANUMERIC:
        head -= 1
    options = [[(url, consts.MODE_BYTE)]]
    if len(url) - head >= _MIN_TAIL:
        options.append([(url[:head], consts.MODE_BYTE), (url[head:], consts.MODE_ALPHANUMERIC)])
    return options


def qr_code(url: str) -> segno.QRCode:
    """The smallest QR code (level M) holding exactly ``url``."""
    if not url.isascii():
        raise ValueError("a QR seal URL is ASCII")
    codes = [
        # segno takes a list of (text, mode) segments; its stubs only declare str.
        segno.make_qr(cast(Any, segments), error=ERROR_CORRECTION, boost_error=False)
        for segments in _candidates(url)
    ]
    return min(codes, key=lambda code: cast(int, code.version))


def qr_version(url: str) -> int:
    """The symbol version (1-40) :func:`qr_png` and :func:`qr_svg` draw for ``url``."""
    return cast(int, qr_code(url).version)


def qr_png(url: str, scale: int = PNG_SCALE) -> bytes:
    """``url`` as a PNG QR code: black on white, level M, 4-module quiet zone."""
    out = io.BytesIO()
    qr_code(url).save(out, kind="png", scale=scale, border=QUIET_ZONE)
    return out.getvalue()


def qr_svg(url: str, scale: int = SVG_SCALE) -> bytes:
    """``url`` as an SVG QR code (UTF-8, with XML declaration), level M, 4-module quiet zone."""
    out = io.BytesIO()
    qr_code(url).save(
        out, kind="svg", scale=scale, border=QUIET_ZONE, xmldecl=True, title="Licence QR code"
    )
    return out.getvalue()
