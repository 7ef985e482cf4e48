"""Child-protection hotlines the block page shows, by country (``web.hotline_country``).

Free national numbers for children and people worried about a child. ``web.hotline_number`` and
``web.hotline_name`` override the table (for a country not listed, or a school's own line).
"""
from __future__ import annotations

from typing import Any, Optional

HOTLINES: dict[str, tuple[str, str]] = {
    "VN": ("111", "Tổng đài quốc gia bảo vệ trẻ em"),
    "GB": ("0800 1111", "Childline"),
    "US": ("1-800-422-4453", "Childhelp National Child Abuse Hotline"),
    "AU": ("1800 55 1800", "Kids Helpline"),
    "DE": ("116 111", "Nummer gegen Kummer"),
    "FR": ("119", "Allô Enfance en Danger"),
    "IN": ("1098", "CHILDLINE India"),
}


def hotline(web: Any) -> Optional[tuple[str, str]]:
    """(number, name) to show, or None."""
    if web.hotline_number:
        return web.hotline_number, web.hotline_name
    return HOTLINES.get(web.hotline_country)
