"""How a verification report is shown to a person: verdict words, icon, colour, fields."""

from __future__ import annotations

from typing import Any

from authority.verification.report import Outcome, Report, Verdict
from authority.web.i18n import CATALOGUE

#: Colour class and icon of each verdict; the words come from the catalogue (never colour alone).
VERDICT_LOOK = {
    Verdict.VALID: ("good", "✓"),
    Verdict.INVALID: ("bad", "✗"),
    Verdict.REVOKED: ("bad", "✗"),
    Verdict.SUSPENDED: ("warn", "!"),
    Verdict.EXPIRED: ("warn", "!"),
    Verdict.UNKNOWN: ("unknown", "?"),
}
OUTCOME_MARK = {
    Outcome.PASSED: "✓",
    Outcome.FAILED: "✗",
    Outcome.WARNING: "!",
    Outcome.NOT_CHECKED: "–",
}


def mask_identity_number(number: str) -> str:
    """An identity number with its middle hidden, as on receipts: ``1101**********002X``."""
    if len(number) <= 8:
        return number
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def report_view(report: Report) -> dict[str, Any]:
    """The template context of ``verify_report.html``."""
    look, icon = VERDICT_LOOK[report.verdict]
    licence = report.licence or {}
    holder = dict(licence.get("holder") or {})
    if holder.get("id"):
        holder["id"] = mask_identity_number(str(holder["id"]))
    licence_type = licence.get("type") or {}
    agency = licence.get("agency") or {}
    signer = report.signer or {}
    return {
        "report": report.as_dict(),
        "verdict": report.verdict.value,
        "verdict_key": f"verdict.{report.verdict.value.lower()}",
        "look": look,
        "icon": icon,
        "licence": licence,
        "holder": holder,
        "type_code": licence_type.get("code"),
        "type_name_zh": licence_type.get("name_zh"),
        "type_name_en": licence_type.get("name_en"),
        "agency_name": agency.get("name") or signer.get("name"),
        "agency_code": agency.get("code") or signer.get("agency"),
        "data": licence.get("data") or {},
        "checks": [(OUTCOME_MARK[c.outcome], c) for c in report.checks],
    }


CATALOGUE.add(
    {
        "verify.title": {"zh": "核验证照", "en": "Verify a licence"},
        "verify.intro": {
            "zh": "用手机相机扫描证照上的二维码，或上传证照 PDF 或二维码照片。",
            "en": "Scan the QR code on the licence with your camera, "
            "or upload the licence PDF or a photo of its QR code.",
        },
        "verify.scan": {"zh": "用相机扫描二维码", "en": "Scan the QR code with the camera"},
        "verify.scan_stop": {"zh": "停止扫描", "en": "Stop scanning"},
        "verify.scan_hint": {
            "zh": "将二维码对准取景框，识别后自动显示结果。",
            "en": "Hold the QR code in the frame; the result opens by itself.",
        },
        "verify.scan_unavailable": {
            "zh": "无法使用相机。请改为上传照片或 PDF。",
            "en": "The camera is not available. Upload a photo or the PDF instead.",
        },
        "verify.upload": {"zh": "上传文件", "en": "Upload a file"},
        "verify.file_label": {
            "zh": "证照 PDF 或二维码照片",
            "en": "Licence PDF or photo of its QR code",
        },
        "verify.submit": {"zh": "核验", "en": "Verify"},
        "verify.qr_label": {"zh": "或粘贴二维码内容", "en": "Or paste the QR code's text"},
        "verify.again": {"zh": "核验另一份证照", "en": "Verify another licence"},
        "verify.print": {"zh": "打印结果", "en": "Print this result"},
        "verdict.valid": {"zh": "有效", "en": "Valid"},
        "verdict.valid.explain": {
            "zh": "此证照由下列机关签发，内容未被篡改，目前有效。",
            "en": "This licence was issued by the agency below, is unaltered and is in force.",
        },
        "verdict.invalid": {"zh": "无效", "en": "Not valid"},
        "verdict.invalid.explain": {
            "zh": "此证照未通过核验：可能被篡改、伪造或不是本机构签发。请勿信任。",
            "en": "This licence failed verification: it may be altered, forged or not issued "
            "under this authority. Do not rely on it.",
        },
        "verdict.revoked": {"zh": "已撤销", "en": "Revoked"},
        "verdict.revoked.explain": {
            "zh": "此证照是真实的，但已被签发机关撤销，不再有效。",
            "en": "This licence is genuine but the issuing agency has revoked it. "
            "It is no longer valid.",
        },
        "verdict.suspended": {"zh": "已暂停", "en": "Suspended"},
        "verdict.suspended.explain": {
            "zh": "此证照是真实的，但目前已被暂停，暂时无效。",
            "en": "This licence is genuine but currently suspended: it is not valid for now.",
        },
        "verdict.expired": {"zh": "已过期", "en": "Expired"},
        "verdict.expired.explain": {
            "zh": "此证照是真实的，但有效期已过。",
            "en": "This licence is genuine but its validity period has ended.",
        },
        "verdict.unknown": {"zh": "无法确认", "en": "Cannot be confirmed"},
        "verdict.unknown.explain": {
            "zh": "目前无法确认此证照。请勿将其视为有效，稍后再试或联系签发机关。",
            "en": "This licence cannot be confirmed now. Do not treat it as valid; "
            "try again later or ask the issuing agency.",
        },
        "report.licence": {"zh": "证照信息", "en": "Licence"},
        "report.number": {"zh": "证照编号", "en": "Number"},
        "report.type": {"zh": "证照类型", "en": "Type"},
        "report.holder": {"zh": "持证人", "en": "Holder"},
        "report.holder_id": {"zh": "证件号码", "en": "Identity number"},
        "report.valid_from": {"zh": "有效期自", "en": "Valid from"},
        "report.valid_until": {"zh": "有效期至", "en": "Valid until"},
        "report.no_end": {"zh": "长期", "en": "No end date"},
        "report.issued": {"zh": "签发日期", "en": "Issued on"},
        "report.agency": {"zh": "签发机关", "en": "Issuing agency"},
        "report.checks": {"zh": "已完成的检查", "en": "What was checked"},
        "report.details": {"zh": "技术细节", "en": "Technical details"},
        "report.indication": {"zh": "签章验证结论", "en": "Seal validation"},
        "report.sealed_at": {"zh": "盖章时间", "en": "Sealed at"},
        "report.timestamp": {"zh": "时间戳", "en": "Time-stamp"},
        "report.verified_at": {"zh": "核验时间", "en": "Verified at"},
        "report.mode.online": {
            "zh": "已联网对照登记簿核验。",
            "en": "Checked online against the register.",
        },
        "report.mode.offline": {
            "zh": "已依据信任列表离线核验。",
            "en": "Checked offline against the trust list.",
        },
    }
)
