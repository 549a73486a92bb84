"""The printable licence: one bilingual A4 page, and the appearance of the seal put on it.

reportlab lays the page out; every glyph, Latin and Chinese, comes from
WenQuanYi Micro Hei (``fonts/wqy-microhei.ttc``, Apache-2.0, see
``fonts/LICENSE``), which ships inside this package so a rendered licence
never depends on the fonts of the machine. reportlab embeds only the glyphs
used, as font subsets (ISO 32000-1 §9.6.4), with a ToUnicode map so the text
can be searched and copied (§9.10.3).

The page keeps a rectangle free for the visible seal: :data:`LICENCE_SEAL_BOX`.
:func:`authority.seals.pades.seal_pdf` puts the signature widget there, drawn
with :func:`render_seal_appearance`.
"""

from __future__ import annotations

import io
import math
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from reportlab.platypus import Paragraph, Table, TableStyle

__all__ = [
    "FONT_NAME",
    "FONT_PATH",
    "LICENCE_SEAL_BOX",
    "LicenceField",
    "LicenceLayoutError",
    "LicenceView",
    "SealBox",
    "register_fonts",
    "render_licence_pdf",
    "render_seal_appearance",
]

FONT_PATH = Path(__file__).with_name("fonts") / "wqy-microhei.ttc"
FONT_NAME = "WenQuanYiMicroHei"
_SEAL_FONT_NAME = "WenQuanYiMicroHei-Seal"  # the same face, for seal appearances
# Subset tags of seal appearances start here ("FAAAAA"), the page's at 0 ("AAAAAA").
_SEAL_TAG_OFFSET = 500_000
_FONT_SUBFONT = 0  # the proportional face of the collection (1 is "Micro Hei Mono")

PAGE_WIDTH, PAGE_HEIGHT = A4  # 595.28 x 841.89 pt
_MARGIN = 56.0  # content margin; the frame is drawn inside 24..34 pt
_INK = colors.Color(0.10, 0.10, 0.12)
_MUTED = colors.Color(0.38, 0.38, 0.42)
_RED = colors.Color(0.72, 0.09, 0.09)
_RULE = colors.Color(0.70, 0.70, 0.74)
_SHADE = colors.Color(0.955, 0.955, 0.965)

_TABLE_TOP = 690.0
_TABLE_BOTTOM = 250.0  # below this: seal box, QR code and footer
_MIN_FONT_SIZE = 7.5
_FOOTER_TOP = 90.0  # the note and the verification URL hang from here down to the frame
_FOOTER_BOTTOM = 36.0

_font_lock = threading.Lock()
_font_registered = False


@dataclass(frozen=True)
class SealBox:
    """Where the visible seal goes: page index (0-based) and a rectangle in PDF points,
    lower-left (x1, y1) to upper-right (x2, y2), origin at the page's lower-left corner."""

    page: int
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        """Width in points."""
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        """Height in points."""
        return self.y2 - self.y1

    def as_tuple(self) -> tuple[int, int, int, int]:
        """The rectangle as whole points, the form pyHanko's field spec takes."""
        return (round(self.x1), round(self.y1), round(self.x2), round(self.y2))


# The licence layout is fixed, so the seal's place is too: bottom-left of page 1.
LICENCE_SEAL_BOX = SealBox(page=0, x1=_MARGIN, y1=104.0, x2=_MARGIN + 236.0, y2=220.0)


@dataclass(frozen=True)
class LicenceField:
    """One row of the licence's data table: a bilingual label and its value."""

    label_zh: str
    label_en: str
    value: str


@dataclass(frozen=True)
class LicenceView:
    """Everything printed on a licence, already resolved to display text."""

    title_zh: str
    title_en: str
    number: str
    type_name_zh: str
    type_name_en: str
    agency_name_zh: str
    agency_name_en: str
    holder_name: str
    holder_id_label_zh: str  # e.g. 公民身份号码 or 统一社会信用代码
    holder_id_label_en: str  # e.g. Resident ID number or Unified social credit code
    holder_id: str
    valid_from: date
    valid_until: date | None  # None: without expiry
    issued_on: date
    status_zh: str
    status_en: str
    fields: tuple[LicenceField, ...]
    qr_png: bytes
    verify_url: str


class LicenceLayoutError(ValueError):
    """The licence's data does not fit on its one page."""


def _tags_from(offset: int) -> Callable[[TTFont, Any], None]:
    """reportlab's ``TTFont.addObjects``, naming the font subsets from tag ``offset`` on.

    ISO 32000-1 §9.6.4: different subsets in one PDF file shall have different
    tags. reportlab tags a document's subsets AAAAAA, AAAAAB, … and a seal's
    appearance is a second reportlab document imported into the page's, so
    its subsets must count from elsewhere. reportlab's own method runs, with
    only its ``SUBSETN`` (subset index → tag) shifted.
    """
    original = TTFont.addObjects
    namespace = dict(vars(ttfonts))
    namespace["SUBSETN"] = lambda n: ttfonts.SUBSETN(n + offset)
    function: Callable[[TTFont, Any], None] = types.FunctionType(
        original.__code__, namespace, original.__name__, original.__defaults__,
        original.__closure__,
    )  # fmt: skip
    return function


_add_seal_font_objects = _tags_from(_SEAL_TAG_OFFSET)


class _SealFont(TTFont):
    """The bundled face under another name, with subset tags from FAAAAA.

    reportlab registers one font object per face name, so the face is renamed
    (its PDF BaseFont becomes ``FAAAAA+WenQuanYiMicroHei-Seal-0``).
    """

    def __init__(self, name: str, filename: str, subfontIndex: int) -> None:  # noqa: N803
        super().__init__(name, filename, subfontIndex=subfontIndex)
        self.face.name = self.face.name + b"-Seal"

    def addObjects(self, doc: Any) -> None:  # noqa: N802 - reportlab's name
        """Add this font's subsets to ``doc``, tagged from FAAAAA."""
        _add_seal_font_objects(self, doc)


def register_fonts() -> None:
    """Register the bundled font with reportlab, once per process (~0.3 s: call at start-up
    to keep it out of the first request; rendering calls it anyway)."""
    global _font_registered
    with _font_lock:
        if not _font_registered:
            pdfmetrics.registerFont(TTFont(FONT_NAME, str(FONT_PATH), subfontIndex=_FONT_SUBFONT))
            pdfmetrics.registerFont(
                _SealFont(_SEAL_FONT_NAME, str(FONT_PATH), subfontIndex=_FONT_SUBFONT)
            )
            _font_registered = True


def _new_canvas(
    buffer: io.BytesIO, size: tuple[float, float], title: str, font: str = FONT_NAME
) -> canvas.Canvas:
    register_fonts()
    pdf = canvas.Canvas(
        buffer,
        pagesize=size,
        pageCompression=1,
        # Start in the bundled font so no unembedded standard font (Helvetica) is referenced.
        initialFontName=font,  # type: ignore[arg-type]  # types-reportlab says float
        initialFontSize=10,
        lang="zh-CN",
    )
    pdf.setTitle(title)
    pdf.setCreator("Authority")
    pdf.setProducer("Authority (reportlab)")
    return pdf


def _style(
    size: float, *, color: colors.Color = _INK, align: Literal[0, 1] = 0, font: str = FONT_NAME
) -> ParagraphStyle:
    return ParagraphStyle(
        f"s{size}",
        fontName=font,
        fontSize=size,
        leading=size * 1.3,
        textColor=color,
        alignment=align,
    )


def _both(zh: str, en: str, separator: str) -> str:
    """Both forms of a bilingual name, or one when they are the same."""
    return zh if zh == en else f"{zh}{separator}{en}"


def _escape(text: str) -> str:
    """Paragraph text is mini-markup: escape it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _date(value: date) -> str:
    return f"{value.year}年{value.month}月{value.day}日 ({value.isoformat()})"


def _label(zh: str, en: str, size: float) -> Paragraph:
    return Paragraph(
        f"{_escape(zh)}<br/><font size={size * 0.78:.1f} color='#5f5f6b'>{_escape(en)}</font>",
        _style(size),
    )


def _rows(view: LicenceView, size: float) -> list[list[Paragraph]]:
    value_style = _style(size)
    until = _date(view.valid_until) if view.valid_until is not None else "长期有效 / No expiry"
    rows: list[tuple[str, str, str]] = [
        ("持证人", "Holder", view.holder_name),
        (view.holder_id_label_zh, view.holder_id_label_en, view.holder_id),
        ("许可类型", "Licence type", _both(view.type_name_zh, view.type_name_en, " / ")),
        ("发证机关", "Issuing authority", _both(view.agency_name_zh, view.agency_name_en, " / ")),
        ("有效期自", "Valid from", _date(view.valid_from)),
        ("有效期至", "Valid until", until),
        ("发证日期", "Date of issue", _date(view.issued_on)),
        ("状态", "Status", f"{view.status_zh} / {view.status_en}"),
    ]
    rows += [(f.label_zh, f.label_en, f.value) for f in view.fields]
    return [
        [_label(zh, en, size), Paragraph(_escape(value), value_style)] for zh, en, value in rows
    ]


def _table(view: LicenceView, width: float, height: float) -> Table:
    """The data table at the largest font size (down to a floor) that fits ``height``."""
    size = 10.5
    while size >= _MIN_FONT_SIZE:
        table = Table(_rows(view, size), colWidths=[width * 0.34, width * 0.66])
        table.setStyle(
            TableStyle(
                [
                    # Cells hold Paragraphs, but the table still selects a font per cell.
                    ("FONTNAME", (0, 0), (-1, -1), FONT_NAME),
                    ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                    ("BACKGROUND", (0, 0), (0, -1), _SHADE),
                    ("LINEABOVE", (0, 0), (-1, 0), 1.0, _INK),
                    ("LINEBELOW", (0, -1), (-1, -1), 1.0, _INK),
                    ("LINEBELOW", (0, 0), (-1, -2), 0.4, _RULE),
                    ("LEFTPADDING", (0, 0), (-1, -1), 8),
                    ("RIGHTPADDING", (0, 0), (-1, -1), 8),
                    ("TOPPADDING", (0, 0), (-1, -1), size * 0.45),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), size * 0.45),
                ]
            )
        )
        _, needed = table.wrap(width, height)
        if needed <= height:
            return table
        size -= 0.5
    raise LicenceLayoutError(f"{len(view.fields)} data fields do not fit on the licence page")


def _bold_centred(pdf: canvas.Canvas, text: str, y: float, size: float) -> None:
    """A heading: the font has no bold face, so fill and stroke the glyphs (render mode 2)."""
    pdf.saveState()  # the text render mode is graphics state (ISO 32000-1 §9.3.1)
    pdf.setStrokeColor(_INK)
    pdf.setLineWidth(size * 0.035)
    text_object = pdf.beginText()
    text_object.setTextRenderMode(2)
    text_object.setFont(FONT_NAME, size)
    text_object.setFillColor(_INK)
    text_object.setTextOrigin((PAGE_WIDTH - pdf.stringWidth(text, FONT_NAME, size)) / 2, y)
    text_object.textOut(text)
    pdf.drawText(text_object)
    pdf.restoreState()


def _frame(pdf: canvas.Canvas) -> None:
    pdf.setStrokeColor(_RED)
    pdf.setLineWidth(2.4)
    pdf.rect(24, 24, PAGE_WIDTH - 48, PAGE_HEIGHT - 48)
    pdf.setLineWidth(0.7)
    pdf.rect(30, 30, PAGE_WIDTH - 60, PAGE_HEIGHT - 60)


def _header(pdf: canvas.Canvas, view: LicenceView) -> None:
    middle = PAGE_WIDTH / 2
    _centred_at(
        pdf, _both(view.agency_name_zh, view.agency_name_en, "  "), middle, 788, 9.5, _MUTED
    )
    _bold_centred(pdf, view.title_zh, 750, 26)
    _centred_at(pdf, view.title_en, middle, 728, 13, _INK)
    pdf.setStrokeColor(_RED)
    pdf.setLineWidth(1.2)
    pdf.line(PAGE_WIDTH / 2 - 60, 718, PAGE_WIDTH / 2 + 60, 718)
    pdf.setFillColor(_INK)
    pdf.setFont(FONT_NAME, 9.5)
    pdf.drawRightString(PAGE_WIDTH - _MARGIN, 700, f"编号 No.  {view.number}")


def _qr(pdf: canvas.Canvas, view: LicenceView) -> None:
    size = 116.0
    x = PAGE_WIDTH - _MARGIN - size
    y = _FOOTER_TOP + 22
    image = ImageReader(io.BytesIO(view.qr_png))
    pdf.drawImage(image, x, y, size, size, preserveAspectRatio=True, anchor="c")
    pdf.linkURL(view.verify_url, (x, y, x + size, y + size), relative=0)
    _centred_at(pdf, "扫码验证 / Scan to verify", x + size / 2, y - 13, 9.5, _INK)


def _centred_at(
    pdf: canvas.Canvas, text: str, x: float, y: float, size: float, color: colors.Color
) -> None:
    pdf.setFillColor(color)
    pdf.setFont(FONT_NAME, size)
    pdf.drawCentredString(x, y, text)


def _footer(pdf: canvas.Canvas, view: LicenceView) -> None:
    width = PAGE_WIDTH - 2 * _MARGIN
    note = Paragraph(
        "本证书加盖电子印章，扫描二维码或上传本 PDF 即可验证其真实性与当前状态。"
        "<br/>This licence carries an electronic seal: scan the QR code or upload this PDF "
        "to verify it and see its current status.",
        _style(7.5, color=_MUTED, align=TA_CENTER),
    )
    _, note_height = note.wrap(width, _FOOTER_TOP)
    note.drawOn(pdf, _MARGIN, _FOOTER_TOP - note_height)
    room = _FOOTER_TOP - note_height - 3 - _FOOTER_BOTTOM
    size = 6.0
    while True:
        url = Paragraph(_escape(view.verify_url), _style(size, color=_MUTED, align=TA_CENTER))
        _, url_height = url.wrap(width, room)
        if url_height <= room:
            break
        if size <= 4.0:
            raise LicenceLayoutError(f"verification URL of {len(view.verify_url)} characters")
        size -= 0.5
    url.drawOn(pdf, _MARGIN, _FOOTER_TOP - note_height - 3 - url_height)


def render_licence_pdf(view: LicenceView) -> bytes:
    """The licence as a one-page A4 PDF, with :data:`LICENCE_SEAL_BOX` left free for the seal.

    Raises :class:`LicenceLayoutError` when the data fields cannot fit the page.
    """
    buffer = io.BytesIO()
    pdf = _new_canvas(buffer, A4, f"{view.title_zh} {view.title_en} {view.number}")
    pdf.setAuthor(_both(view.agency_name_zh, view.agency_name_en, " / "))
    pdf.setSubject(_both(view.type_name_zh, view.type_name_en, " / "))
    # The verification URL (the QR's text), so a verifier finds the licence a PDF is of.
    pdf.setKeywords(view.verify_url)
    _frame(pdf)
    _header(pdf, view)
    width = PAGE_WIDTH - 2 * _MARGIN
    table = _table(view, width, _TABLE_TOP - _TABLE_BOTTOM)
    _, height = table.wrap(width, _TABLE_TOP - _TABLE_BOTTOM)
    table.drawOn(pdf, _MARGIN, _TABLE_TOP - height)
    box = LICENCE_SEAL_BOX
    _centred_at(
        pdf, "发证机关（电子印章）/ Issued and sealed by", box.x1 + box.width / 2, box.y2 + 8,
        8.5, _MUTED,
    )  # fmt: skip
    _qr(pdf, view)
    _footer(pdf, view)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _star(pdf: canvas.Canvas, cx: float, cy: float, radius: float) -> None:
    path = pdf.beginPath()
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.382
        angle = math.pi / 2 + i * math.pi / 5
        point = (cx + r * math.cos(angle), cy + r * math.sin(angle))
        if i == 0:
            path.moveTo(*point)
        else:
            path.lineTo(*point)
    path.close()
    pdf.drawPath(path, stroke=0, fill=1)


def render_seal_appearance(
    width: float, height: float, *, agency_zh: str, agency_en: str, sealed_at: datetime
) -> bytes:
    """A one-page PDF of ``width`` x ``height`` points: the seal's visible appearance.

    A red emblem and the words 电子印章 / Electronic seal, the agency and the
    sealing time (UTC). The background is transparent, so it overlays the page.
    """
    if sealed_at.tzinfo is None:
        raise ValueError("sealed_at must be timezone-aware")
    buffer = io.BytesIO()
    pdf = _new_canvas(buffer, (width, height), "电子印章 / Electronic seal", _SEAL_FONT_NAME)
    pdf.setStrokeColor(_RED)
    pdf.setFillColor(_RED)
    pdf.setLineWidth(1.2)
    pdf.roundRect(1, 1, width - 2, height - 2, 6)
    radius = min(height / 2 - 8, width * 0.2)
    cx, cy = 8 + radius, height / 2
    pdf.setLineWidth(2.2)
    pdf.circle(cx, cy, radius)
    pdf.setLineWidth(0.6)
    pdf.circle(cx, cy, radius - 4)
    _star(pdf, cx, cy + radius * 0.12, radius * 0.38)
    pdf.setFont(_SEAL_FONT_NAME, radius * 0.26)
    pdf.drawCentredString(cx, cy - radius * 0.62, "电子印章")
    x = cx + radius + 10
    moment = sealed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    texts = [
        ("电子印章 · Electronic seal", 9.5, _RED, 0.0),
        (_escape(agency_zh), 9.0, _INK, 2.0),
        (_escape(agency_en), 7.5, _INK, 0.0),
        (f"盖章时间 Sealed at<br/>{moment}", 7.0, _MUTED, 3.0),
    ]
    scale = 1.0
    while True:  # long agency names wrap; shrink the text until it fits the box
        paragraphs = [
            (Paragraph(text, _style(size * scale, color=color, font=_SEAL_FONT_NAME)), gap)
            for text, size, color, gap in texts
        ]
        heights = [p.wrap(width - x - 6, height)[1] + gap for p, gap in paragraphs]
        if sum(heights) <= height - 8 or scale < 0.5:
            break
        scale *= 0.9
    y = (height + sum(heights)) / 2
    for (paragraph, _), block in zip(paragraphs, heights, strict=True):
        y -= block
        paragraph.drawOn(pdf, x, y)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
