"""A paragraph whose only content is a plain link (where to go next: Back to sign in, Back to the
dashboard) is a finger-sized target on a phone or a tablet: it carries the ``next-links`` class
(static/css/lightbox.css), not a bare ``<p>``, where the link was a 19 px line of text.
E-mail templates are left out: no stylesheet reaches them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "templates"
BARE = re.compile(r"<p>\s*<a href=[^>]*>[^<]*(?:<[^/][^>]*>[^<]*</[^>]+>[^<]*)*</a>\s*</p>")


def test_a_link_alone_in_its_paragraph_is_a_next_link():
    found = []
    for path in sorted(ROOT.rglob("*.html")):
        if "email" in path.parts:
            continue
        for match in BARE.finditer(path.read_text()):
            found.append(f"{path.relative_to(ROOT)}: {match.group(0)[:80]}")
    assert found == [], found
