"""A Range request without If-Range (``curl -C -``, ``wget -c``) names bytes from N of a package
the client holds the first N bytes of, but not which version of it: the server may only answer
206 when it knows the client began this very version. 96fc9c3 sent the package whole when the
request continued no transfer of the actor's of the package as it is now; three ways still
spliced the new zip's rest onto an old first part, a corrupt file (found by review):

- the same person's transfer of the new version on another device (their phone) was taken as
  the one the laptop continued: a bare Range now continues only a transfer begun in its own
  browser session, and none when that session began one of another version too;
- staff downloading on their role keep no transfer: their bare Range is sent whole (a browser's
  resume sends If-Range, and still gets 206);
- a bare Range past the end of a changed, smaller package was answered 416, which ``wget -c``
  takes for "already complete", keeping the old partial file: the whole package is decided first.

A whole response is a new download, counted, refused once the limit is used up."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.organizations.models import Role
from apps.renditions.services import study_renditions_make
from apps.sharing import services as sharing
from apps.sharing.models import GrantDownload
from tests.factories import member
from tests.renditions.test_resume_changed_package import _add_study, _body, _case_url, _count, _study_url

pytestmark = pytest.mark.django_db


def _opens(blob: bytes) -> bool:
    """Whether ``blob`` is a zip whose every entry reads back intact."""
    try:
        return zipfile.ZipFile(io.BytesIO(blob)).testzip() is None
    except zipfile.BadZipFile:
        return False


def _consultant_share(case, owner, *, limit: int):
    consultant = member(case.organization, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    sharing.grant_create(case=case, grantee=consultant, by=owner, permissions=["view", "download_preview"],
                         renditions=["preview"], download_limit=limit, expires_at=timezone.now() + timedelta(hours=2))
    return consultant


def test_a_bare_range_on_the_laptop_does_not_continue_the_phones_download_of_the_new_zip(
        ct_study, clinician_a, client_as, tmp_path):
    """The reviewer's requests: a signed-in recipient pauses the case's zip on the laptop, the case
    changes, they download the new zip on their phone, then the laptop's ``curl -C -`` asks the
    rest of its (old) file. The phone's transfer is of the package as it is now, but not this
    client's: 200, the whole new zip, a new download counted; HEAD the same, uncounted. Before,
    206 with the new zip's rest, uncounted, spliced onto the old first part."""
    case = ct_study.case
    consultant = _consultant_share(case, clinician_a, limit=3)
    laptop, phone = client_as(consultant), client_as(consultant)
    begun = _body(laptop.get(_case_url(case, "preview"), headers={"Range": "bytes=0-4999"}))
    _add_study(case, tmp_path / "second")
    new = _body(phone.get(_case_url(case, "preview")))
    assert _count(case) == 2

    rest = {"Range": f"bytes={len(begun)}-"}
    head = laptop.head(_case_url(case, "preview"), headers=rest)
    assert head.status_code == 200 and "Content-Range" not in head
    response = laptop.get(_case_url(case, "preview"), headers=rest)
    assert response.status_code == 200 and "Content-Range" not in response
    whole = _body(response)
    assert whole == new and _opens(whole)
    assert not _opens(begun + new[len(begun):])  # what 206 would have made of it
    assert _count(case) == 3  # a new download, counted


def test_once_the_downloads_are_used_the_laptops_bare_range_is_refused(ct_study, clinician_a, client_as, tmp_path):
    """The same with the last download taken by the phone: the laptop's request is a new download,
    refused (403), nothing sent nor counted; nothing of the phone's transfer is touched."""
    case = ct_study.case
    consultant = _consultant_share(case, clinician_a, limit=2)
    laptop, phone = client_as(consultant), client_as(consultant)
    begun = _body(laptop.get(_case_url(case, "preview"), headers={"Range": "bytes=0-4999"}))
    _add_study(case, tmp_path / "second")
    _body(phone.get(_case_url(case, "preview")))
    phones = GrantDownload.objects.filter(grant__case=case).latest("started_at")

    assert laptop.head(_case_url(case, "preview"), headers={"Range": f"bytes={len(begun)}-"}).status_code == 403
    assert laptop.get(_case_url(case, "preview"), headers={"Range": f"bytes={len(begun)}-"}).status_code == 403
    assert _count(case) == 2
    assert GrantDownload.objects.get(pk=phones.pk).resumes == 0


def test_a_bare_range_in_a_browser_that_began_the_old_zip_too_is_sent_whole(ct_study, clinician_a, client_as,
                                                                            tmp_path):
    """One browser session that began both versions (the old zip paused, then the new one begun
    into another file): which file a bare Range continues, nothing says, so it continues neither:
    200, the whole new zip, counted."""
    case = ct_study.case
    consultant = _consultant_share(case, clinician_a, limit=3)
    laptop = client_as(consultant)
    begun = _body(laptop.get(_case_url(case, "preview"), headers={"Range": "bytes=0-4999"}))
    _add_study(case, tmp_path / "second")
    new = _body(laptop.get(_case_url(case, "preview"), headers={"Range": "bytes=0-99"}))
    assert _count(case) == 2

    response = laptop.get(_case_url(case, "preview"), headers={"Range": f"bytes={len(begun)}-"})
    assert response.status_code == 200
    whole = _body(response)
    assert whole[:100] == new and _opens(whole)
    assert _count(case) == 3


def test_resumes_of_the_same_version_keep_their_206(ct_study, clinician_a, client_as, tmp_path):
    """What still continues a transfer, uncounted: the same browser's bare Range of the version it
    began, and, from any device of the same person, a Range whose If-Range names the package as it
    is now (the client says its first part is of this version: a browser's resume)."""
    case = ct_study.case
    consultant = _consultant_share(case, clinician_a, limit=3)
    laptop, phone = client_as(consultant), client_as(consultant)
    _add_study(case, tmp_path / "second")
    part = laptop.get(_case_url(case, "preview"), headers={"Range": "bytes=0-99"})
    begun = _body(part)
    more = laptop.get(_case_url(case, "preview"), headers={"Range": f"bytes={len(begun)}-199"})
    assert more.status_code == 206
    begun += _body(more)
    elsewhere = phone.get(_case_url(case, "preview"), headers={"Range": f"bytes={len(begun)}-",
                                                               "If-Range": part["ETag"]})
    assert elsewhere.status_code == 206
    assert _opens(begun + _body(elsewhere))
    assert _count(case) == 1
    assert GrantDownload.objects.get(grant__case=case).resumes == 2


def test_staff_bare_range_is_sent_whole_and_their_browsers_resume_is_206(ct_study, client_as, clinician_a, tmp_path):
    """Staff download on their role, and no transfer is kept: a bare Range from a byte after the
    first gets the whole package (200), so that the rest of a changed case zip is never spliced
    onto their old first part; HEAD the same. A Range with If-Range naming the package as it is
    (a browser's resume) keeps its 206, and one from the first byte too."""
    case = ct_study.case
    staff = client_as(clinician_a)
    begun = _body(staff.get(_case_url(case), headers={"Range": "bytes=0-4999"}))
    _add_study(case, tmp_path / "second")
    rest = {"Range": f"bytes={len(begun)}-"}
    head = staff.head(_case_url(case), headers=rest)
    assert head.status_code == 200 and "Content-Range" not in head
    response = staff.get(_case_url(case), headers=rest)
    assert response.status_code == 200 and "Content-Range" not in response
    new = _body(response)
    assert _opens(new) and len(new) == int(head["Content-Length"])

    resumed = staff.get(_case_url(case), headers={**rest, "If-Range": response["ETag"]})
    assert resumed.status_code == 206
    assert new[:len(begun)] + _body(resumed) == new
    assert staff.get(_case_url(case), headers={"Range": "bytes=0-99"}).status_code == 206


def _smaller_previews(study, monkeypatch) -> None:
    """The study's previews made again at a lower quality: a smaller package, another ETag."""
    from apps.renditions import encoders
    from apps.renditions.models import Kind, RenditionFile

    RenditionFile.objects.filter(study=study, kind=Kind.PREVIEW).delete()
    monkeypatch.setattr(encoders, "PREVIEW_QUALITY", encoders.PREVIEW_QUALITY - 40)
    study_renditions_make(study_id=study.pk)


def test_a_bare_range_past_the_end_of_a_smaller_new_package_is_sent_whole_not_416(
        ct_study, clinician_a, client_as, monkeypatch):
    """``wget -c`` of a study's preview zip it holds whole: while it is the package as it is, 416
    (``already complete``), nothing counted. Once the previews were made again smaller, the same
    request is past the new package's end: 200, the whole new package, counted (a 416 told wget its
    old file was the package). HEAD the same."""
    consultant = _consultant_share(ct_study.case, clinician_a, limit=3)
    laptop = client_as(consultant)
    old = _body(laptop.get(_study_url(ct_study)))
    assert _count(ct_study.case) == 1
    complete = {"Range": f"bytes={len(old)}-"}
    assert laptop.get(_study_url(ct_study), headers=complete).status_code == 416
    assert _count(ct_study.case) == 1

    _smaller_previews(ct_study, monkeypatch)
    head = laptop.head(_study_url(ct_study), headers=complete)
    assert head.status_code == 200
    response = laptop.get(_study_url(ct_study), headers=complete)
    assert response.status_code == 200
    new = _body(response)
    assert len(new) < len(old) and len(new) == int(head["Content-Length"]) and _opens(new)
    assert _count(ct_study.case) == 2


def test_staffs_bare_range_past_the_end_of_a_smaller_new_package_is_sent_whole(ct_study, client_as, clinician_a,
                                                                               monkeypatch):
    """The same for staff downloading on their role (no transfer kept): 200, the whole package."""
    staff = client_as(clinician_a)
    old = _body(staff.get(_study_url(ct_study)))
    _smaller_previews(ct_study, monkeypatch)
    response = staff.get(_study_url(ct_study), headers={"Range": f"bytes={len(old)}-"})
    assert response.status_code == 200
    new = _body(response)
    assert len(new) < len(old) and _opens(new)


def test_a_bare_range_past_the_end_continuing_nothing_is_the_whole_package_counted(ct_study, clinician_a, client_as):
    """A bare Range past the package's end from a client that began no transfer of it (its file is
    of another version, or from elsewhere): not 416, which ``wget -c`` takes for "complete", but
    the package whole, a new download, counted."""
    consultant = _consultant_share(ct_study.case, clinician_a, limit=3)
    client = client_as(consultant)
    response = client.get(_study_url(ct_study), headers={"Range": "bytes=999999999-"})
    assert response.status_code == 200 and _opens(_body(response))
    assert _count(ct_study.case) == 1
