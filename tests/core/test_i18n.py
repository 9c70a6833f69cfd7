"""Every user-facing string is translatable, and the Spanish catalogue is complete and compiled."""

from __future__ import annotations

import gettext
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import translation

from tests.servers import ROOT, clean_env

LOCALES = ["es"]


def _all_msgids(po: Path) -> set[str]:
    """Every msgid of a .po file, wrapped ones joined, translated or not."""
    ids, current, in_id = set(), [], False
    for line in [*po.read_text().splitlines(), ""]:
        if line.startswith("msgid "):
            current, in_id = [line[7:-1]], True
        elif in_id and line.startswith('"'):
            current.append(line[1:-1])
        elif in_id:
            ids.add("".join(current))
            in_id = False
    return ids - {""}


def _msgids(po: Path) -> dict[str, str]:
    """msgid -> msgstr of a .po file (enough of the format for our catalogues)."""
    catalog = gettext.GNUTranslations()
    mo = po.with_suffix(".check.mo")
    subprocess.run(["msgfmt", "--check-format", "-o", str(mo), str(po)], check=True)
    with mo.open("rb") as fh:
        catalog = gettext.GNUTranslations(fh)
    mo.unlink()
    return {k: v for k, v in catalog._catalog.items() if k}


@pytest.mark.parametrize("lang", LOCALES)
def test_catalogue_is_complete_and_not_fuzzy(lang):
    po = ROOT / "locale" / lang / "LC_MESSAGES" / "django.po"
    text = po.read_text()
    assert "#, fuzzy" not in text, "fuzzy entries are not used at run time"
    empty = re.findall(r'\nmsgid "(.+)"\nmsgstr ""\n\n', text)
    assert not empty, f"untranslated: {empty}"


@pytest.mark.parametrize("lang", LOCALES)
def test_compiled_catalogue_matches_its_source(lang):
    po = ROOT / "locale" / lang / "LC_MESSAGES" / "django.po"
    with (po.with_suffix(".mo")).open("rb") as fh:
        compiled = {k: v for k, v in gettext.GNUTranslations(fh)._catalog.items() if k}
    assert compiled == _msgids(po), "run `make messages` to recompile locale/"


@pytest.mark.slow
@pytest.mark.parametrize("lang", LOCALES)
def test_every_marked_string_is_in_the_catalogue(lang, tmp_path):
    """makemessages over a copy of the source finds no string the committed catalogue lacks."""
    for part in ("apps", "portal", "templates", "locale", "manage.py"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / part)
    subprocess.run([sys.executable, "manage.py", "makemessages", "-l", lang, "--no-obsolete"], cwd=tmp_path,
                   env=clean_env(LIGHTBOX_VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(tmp_path)),
                   check=True, capture_output=True)
    fresh = _all_msgids(tmp_path / "locale" / lang / "LC_MESSAGES" / "django.po")
    committed = _all_msgids(ROOT / "locale" / lang / "LC_MESSAGES" / "django.po")
    assert len(fresh) > 50
    assert fresh - committed == set(), "run `make messages` and translate the new strings"


@pytest.mark.django_db
def test_pages_follow_the_chosen_language(client_as, admin_a):
    client = client_as(admin_a)
    response = client.post(reverse("set_language"), {"language": "es", "next": "/"})
    assert response.status_code == 302
    page = client.get("/").content.decode()
    assert '<html lang="es">' in page and "Panel" in page and "Cerrar sesión" in page
    with translation.override("es"):
        assert translation.gettext("Dashboard") == "Panel"


@pytest.mark.parametrize("lang", ["en", "es"])
def test_dates_read_the_same_in_every_language(lang):
    """12/05/2026 is 5 December to a European reader and 12 May to an American one: pages show
    dates as year-month-day with a 24-hour clock in every language."""
    from datetime import date, datetime

    from django.template import Context, Template

    template = Template('{{ d|date:"SHORT_DATE_FORMAT" }}|{{ t|date:"SHORT_DATETIME_FORMAT" }}')
    with translation.override(lang):
        shown = template.render(Context({"d": date(2026, 3, 4), "t": datetime(2026, 3, 4, 15, 7)}))
    assert shown == "2026-03-04|2026-03-04 15:07"


@pytest.mark.django_db
def test_case_and_share_pages_show_an_expiry_the_same_way(client_as, admin_a):
    """The case page and My shares used different formats for the same expiry."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import CaseFactory, GrantFactory, UserFactory

    case = CaseFactory(organization=admin_a.memberships.get().organization)
    expires = (timezone.now() + timedelta(days=3)).replace(hour=15, minute=7, second=0, microsecond=0)
    GrantFactory(organization=case.organization, case=case, grantee=UserFactory(), created_by=admin_a,
                 expires_at=expires)
    client = client_as(admin_a)
    shown = timezone.localtime(expires).strftime("%Y-%m-%d %H:%M")
    for url in (reverse("cases:case_detail", kwargs={"case_id": case.public_id}), reverse("sharing:my_shares")):
        assert shown in client.get(url).content.decode(), url


#: the names makemessages (xgettext, with Django's keywords) reads as marking a string
_MARKERS = {"_", "gettext", "gettext_lazy", "gettext_noop", "ngettext", "ngettext_lazy", "pgettext",
            "pgettext_lazy", "npgettext", "npgettext_lazy"}


def test_strings_are_marked_by_names_makemessages_reads():
    """A translation function imported under another name (``gettext_lazy as _lazy``) marks
    nothing for makemessages: its strings are never extracted, and a catalogue's translation of
    them, added by hand, is dropped by the next ``makemessages --no-obsolete`` (found by a reviewer:
    the patient invitation's closed-case refusal)."""
    import ast

    misnamed = []
    for path in sorted([*(ROOT / "apps").rglob("*.py"), *(ROOT / "portal").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "django.utils.translation":
                misnamed += [f"{path.relative_to(ROOT)}: {a.name} as {a.asname}" for a in node.names
                             if a.name in _MARKERS and (a.asname or a.name) not in _MARKERS]
    assert misnamed == []
