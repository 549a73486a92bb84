"""Read the QR code in a photo or scan of a licence (zxing-cpp), within bounded work."""

from __future__ import annotations

import warnings
from io import BytesIO

import zxingcpp
from PIL import Image, UnidentifiedImageError

from authority.errors import InvalidInput

#: Larger images are refused before decoding (a 12-megapixel phone photo fits).
MAX_PIXELS = 40_000_000
QR_ONLY = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "GIF", "WEBP", "BMP"})


class NoQrCode(InvalidInput):
    """The image is readable but holds no QR code we can read."""

    slug = "no-qr-code"
    title = "No QR code found"


class UnreadableImage(InvalidInput):
    """The file is not an image we read, or is too large to decode safely."""

    slug = "unreadable-image"
    title = "Unreadable image"


def is_image(data: bytes) -> bool:
    """Whether ``data`` starts like one of the image formats we read."""
    return data.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8", b"BM")) or (
        data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    )


def qr_text_in_image(data: bytes) -> str:
    """The text of the first QR code in the image ``data``.

    Raises :class:`UnreadableImage` for anything that is not a bounded image
    of an accepted format (decompression bombs included) and :class:`NoQrCode`
    when no QR code is found.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(BytesIO(data))
            if image.format not in IMAGE_FORMATS:
                raise UnreadableImage(f"image format {image.format} is not accepted")
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise UnreadableImage(f"the image is larger than {MAX_PIXELS} pixels")
            image.load()
            grey = image.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, SyntaxError) as exc:  # fmt: skip
        raise UnreadableImage(f"not a readable image ({type(exc).__name__})") from None
    results = zxingcpp.read_barcodes(grey, formats=QR_ONLY)
    for result in results:
        if result.valid and result.text:
            return str(result.text)
    raise NoQrCode("no QR code found in the image")
