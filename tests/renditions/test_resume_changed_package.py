"""A Range request continues a counted transfer only for the package that was counted: its ETag
now must be the one the transfer was counted on, whether the client sends If-Range or not. A
package that changed since (a study added to the case, the study's previews made again) is a new
download, counted, and refused once the download limit is used up; before, a holder of a
one-download link who sent ``Range: bytes=1-`` without If-Range got the case as it is now,
uncounted (found by a reviewer). Honest resumes of an unchanged package still count once."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.organizations.models import Role
from apps.renditions.services import study_renditions_make
from apps.sharing import policy
from apps.sharing import services as sharing
from apps.sharing.models import Grant, GrantDownload
from apps.sharing.usecases import RecipientKind, UseCase
from tests.factories import LINK_PASSCODE, CaseFactory, anonymous_original_terms, member, open_anonymous_link
from tests.renditions.conftest import ingest_folder

pytestmark = pytest.mark.django_db


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _case_url(case, kind="original") -> str:
    return reverse("renditions:case_download", kwargs={"case_id": case.public_id}) + f"?rendition={kind}"


def _study_url(study, kind="preview") -> str:
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _visitor(case, owner, *, limit: int, renditions: list[str]) -> Client:
    """A visitor holding an anonymous link onto ``case`` (custom share, ``limit`` downloads)."""
    org = case.organization
    org.anonymous_links_enabled = True
    org.save()
    _grant, _link, raw = sharing.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                              recipient_kind=RecipientKind.ANONYMOUS, download_limit=limit,
                                              renditions=renditions, **anonymous_original_terms(org))
    visitor = Client()
    assert open_anonymous_link(visitor, raw, passcode=LINK_PASSCODE).status_code == 302
    return visitor


def _count(case) -> int:
    return Grant.objects.get(case=case).download_count


def _add_study(case, folder) -> None:
    """Staff add a second study (its renditions made) to ``case``."""
    from bench.ingest.synthetic import write_ct_series

    write_ct_series(folder, slices=6, rows=64, columns=64)
    [second] = ingest_folder(folder, case.organization, case=case)
    study_renditions_make(study_id=second.pk)


@pytest.mark.parametrize("first_range", [None, "bytes=0-0"])
def test_a_resume_of_a_case_zip_that_changed_is_refused_when_the_download_is_used(ct_study, clinician_a, tmp_path,
                                                                                 first_range):
    """The reviewer's requests: the one download counted (whole, or its first byte only), a study
    added to the case, then ``Range: bytes=1-`` without If-Range: a new download of a package
    that changed, refused (403), nothing counted, nothing sent."""
    case = ct_study.case
    visitor = _visitor(case, clinician_a, limit=1, renditions=["original"])
    first = visitor.get(_case_url(case), headers={"Range": first_range} if first_range else {})
    assert first.status_code == (206 if first_range else 200)
    _body(first)
    assert _count(case) == 1
    assert visitor.get(_case_url(case)).status_code == 403  # the one download is used

    _add_study(case, tmp_path / "second")
    transfers = GrantDownload.objects.filter(grant__case=case).count()
    assert visitor.get(_case_url(case), headers={"Range": "bytes=1-"}).status_code == 403
    assert _count(case) == 1
    assert GrantDownload.objects.filter(grant__case=case).count() == transfers
    assert GrantDownload.objects.get(grant__case=case).resumes == 0


def test_a_resume_of_a_changed_case_zip_is_a_new_download_counted(ct_study, clinician_a, tmp_path):
    """With a download left, the same request is a new download of the case as it is now, counted;
    the new transfer is then resumed, uncounted, like any other resume naming its version
    (If-Range), and gives the whole new zip."""
    case = ct_study.case
    visitor = _visitor(case, clinician_a, limit=2, renditions=["original"])
    old = _body(visitor.get(_case_url(case)))
    old_entries = len(zipfile.ZipFile(io.BytesIO(old)).namelist())
    assert _count(case) == 1

    _add_study(case, tmp_path / "second")
    part = visitor.get(_case_url(case), headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    begun = _body(part)
    assert _count(case) == 2  # begun afresh: the package changed, so counted
    # its If-Range names the new version (a browser's resume): this browser also began the old one,
    # so a bare Range would not say which it continues (whole: tests/renditions/test_resume_splice.py)
    rest = visitor.get(_case_url(case), headers={"Range": f"bytes={len(begun)}-", "If-Range": part["ETag"]})
    assert rest.status_code == 206
    new = begun + _body(rest)
    assert _count(case) == 2  # the same (new) package continued: counted once
    archive = zipfile.ZipFile(io.BytesIO(new))
    assert archive.testzip() is None and len(archive.namelist()) > old_entries
    transfer = GrantDownload.objects.filter(grant__case=case).latest("started_at")
    assert transfer.package_etag == part["ETag"] and transfer.package_bytes == len(new)


def test_a_resume_of_a_study_package_whose_previews_were_made_again_since_is_refused(org_a, clinician_a, small_ct,
                                                                                    client_as, monkeypatch):
    """A study's preview package downloaded, then its previews made again (other bytes: another
    quality): a Range request of the one-download grant's recipient is a new download of another
    package, refused, If-Range or not. (A package downloaded before its previews were made was
    the first example; such a package is no longer sent: tests/renditions/test_being_made_not_downloaded.py.)"""
    from apps.renditions import encoders
    from apps.renditions.models import Kind, RenditionFile
    from apps.renditions.packages import study_package

    case = CaseFactory(organization=org_a)
    [study] = ingest_folder(small_ct, org_a, case=case)
    study_renditions_make(study_id=study.pk)
    consultant = member(org_a, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    sharing.grant_create(case=case, grantee=consultant, by=clinician_a, permissions=["view", "download_preview"],
                         renditions=["preview"], download_limit=1, expires_at=timezone.now() + timedelta(hours=2))
    visitor = client_as(consultant)
    first = visitor.get(_study_url(study))
    assert first.status_code == 200
    before = _body(first)
    assert _count(case) == 1

    RenditionFile.objects.filter(study=study, kind=Kind.PREVIEW).delete()
    monkeypatch.setattr(encoders, "PREVIEW_QUALITY", encoders.PREVIEW_QUALITY - 30)
    study_renditions_make(study_id=study.pk)
    assert study_package(study, Kind.PREVIEW).etag != first["ETag"]  # another package
    assert visitor.get(_study_url(study), headers={"Range": "bytes=1-"}).status_code == 403
    assert visitor.get(_study_url(study), headers={"Range": f"bytes={len(before) // 2}-",
                                                   "If-Range": first["ETag"]}).status_code == 403
    assert _count(case) == 1


@pytest.mark.parametrize("if_range", [False, True])
def test_an_honest_resume_of_an_unchanged_package_counts_once(ct_study, clinician_a, if_range):
    """The package unchanged: the rest of it, with or without If-Range, continues the transfer on
    the one download, and gives the package whole."""
    case = ct_study.case
    visitor = _visitor(case, clinician_a, limit=1, renditions=["original"])
    part = visitor.get(_case_url(case), headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    begun = _body(part)
    headers = {"Range": f"bytes={len(begun)}-", **({"If-Range": part["ETag"]} if if_range else {})}
    rest = visitor.get(_case_url(case), headers=headers)
    assert rest.status_code == 206
    whole = begun + _body(rest)
    assert zipfile.ZipFile(io.BytesIO(whole)).testzip() is None
    assert _count(case) == 1
    assert GrantDownload.objects.get(grant__case=case).resumes == 1


def test_the_policy_resumes_a_transfer_of_the_same_package_version_only(ct_study, clinician_a):
    """``download_decide``/``download_count``: a resume names the package's ETag as it is now; a
    transfer counted on another ETag is not continued (the limit refuses the new download), and
    the bytes a resume may take are bounded by the size the transfer counted, not the size told."""
    consultant = member(ct_study.organization, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    grant = sharing.grant_create(case=ct_study.case, grantee=consultant, by=clinician_a,
                                 permissions=["view", "download_preview"], renditions=["preview"], download_limit=1,
                                 expires_at=timezone.now() + timedelta(hours=2))
    key = f"study:{ct_study.public_id}:preview"

    def resume(etag: str, sending: int = 10, package_bytes: int = 100):
        return policy.download_authorize(actor=consultant, obj=ct_study, rendition="preview", package_key=key,
                                         package_etag=etag, resumed=True, sending=sending,
                                         package_bytes=package_bytes)

    assert policy.download_authorize(actor=consultant, obj=ct_study, rendition="preview", package_key=key,
                                     package_etag='"v1"', sending=100, package_bytes=100) == grant
    transfer = GrantDownload.objects.get(grant=grant)
    assert (transfer.package_etag, transfer.package_bytes) == ('"v1"', 100)
    with pytest.raises(PermissionDenied):
        resume('"v2"')  # another version: a new download, and the one download is used
    assert resume('"v1"') == grant  # the same version: continued, uncounted
    # the package said to be far larger now: the cap is still twice the 100 bytes counted
    with pytest.raises(PermissionDenied):
        resume('"v1"', sending=95, package_bytes=10_000)
    grant.refresh_from_db()
    transfer.refresh_from_db()
    assert grant.download_count == 1 and transfer.resumes == 1 and transfer.bytes_sent == 110


def test_a_head_resume_of_a_changed_package_is_refused_as_its_get(ct_study, clinician_a, tmp_path):
    """HEAD asks the same question as GET, counting nothing: a Range request that would resume a
    transfer of a package that changed since is decided on the package as it is now, so the
    one-download link's holder whose GET is refused gets no 206 either, nor the new package's
    ETag and size (found by a reviewer: HEAD was answered on the decision made before the
    package was built, which took a transfer of any version as a resume)."""
    case = ct_study.case
    visitor = _visitor(case, clinician_a, limit=1, renditions=["original"])
    first = visitor.get(_case_url(case), headers={"Range": "bytes=0-0"})
    _body(first)
    _add_study(case, tmp_path / "second")
    get = visitor.get(_case_url(case), headers={"Range": "bytes=1-"})
    head = visitor.head(_case_url(case), headers={"Range": "bytes=1-"})
    assert get.status_code == 403
    assert head.status_code == get.status_code
    assert "ETag" not in head and "Content-Range" not in head
    assert _count(case) == 1
    assert GrantDownload.objects.get(grant__case=case).resumes == 0


def test_a_head_resume_of_an_unchanged_package_answers_206_counting_nothing(ct_study, clinician_a):
    """The package unchanged: HEAD of the rest of a transfer under way answers as its GET would
    (206, the same ETag, the rest's length), counts nothing and touches no transfer; the GET of
    the rest then continues the transfer on the one download."""
    case = ct_study.case
    visitor = _visitor(case, clinician_a, limit=1, renditions=["original"])
    part = visitor.get(_case_url(case), headers={"Range": "bytes=0-99"})
    begun = _body(part)
    transfer = GrantDownload.objects.get(grant__case=case)
    head = visitor.head(_case_url(case), headers={"Range": f"bytes={len(begun)}-"})
    assert head.status_code == 206
    assert head["ETag"] == part["ETag"]
    total = int(part["Content-Range"].rsplit("/", 1)[1])
    assert head["Content-Range"] == f"bytes {len(begun)}-{total - 1}/{total}"
    assert int(head["Content-Length"]) == total - len(begun)
    untouched = GrantDownload.objects.get(pk=transfer.pk)
    assert _count(case) == 1
    assert (untouched.resumes, untouched.bytes_sent, untouched.last_activity_at) == (
        transfer.resumes, transfer.bytes_sent, transfer.last_activity_at)
    rest = visitor.get(_case_url(case), headers={"Range": f"bytes={len(begun)}-"})
    assert rest.status_code == 206
    assert len(begun + _body(rest)) == total
    assert _count(case) == 1


@pytest.mark.parametrize("first_range", [None, "bytes=0-99"])
def test_a_bare_range_after_the_case_zip_changed_gets_the_whole_new_zip(ct_study, clinician_a, tmp_path, first_range):
    """A Range request from a byte after the first without If-Range, once the case zip changed
    since the transfer counted: a new download, counted, and the Range ignored (RFC 9110 lets a
    server): 200 and the whole new zip, which opens with all its entries. Before, it was answered
    206 with the new zip's bytes from there on, which the client spliced onto the old zip's first
    part: a corrupt file (found by a reviewer). HEAD answers as its GET, counting nothing."""
    case = ct_study.case
    visitor = _visitor(case, clinician_a, limit=2, renditions=["original"])
    first = visitor.get(_case_url(case), headers={"Range": first_range} if first_range else {})
    old = _body(first)
    assert _count(case) == 1

    _add_study(case, tmp_path / "second")
    rest = {"Range": f"bytes={len(old) if first_range else 100}-"}
    head = visitor.head(_case_url(case), headers=rest)
    assert head.status_code == 200 and "Content-Range" not in head
    assert head["ETag"] != first["ETag"]
    assert _count(case) == 1
    response = visitor.get(_case_url(case), headers=rest)
    assert response.status_code == 200 and "Content-Range" not in response
    new = _body(response)
    assert int(response["Content-Length"]) == len(new) == int(head["Content-Length"])
    assert response["ETag"] == head["ETag"]
    archive = zipfile.ZipFile(io.BytesIO(new))
    assert archive.testzip() is None
    assert len([name for name in archive.namelist() if name.endswith(".dcm")]) == 12  # both studies' 6 slices
    assert _count(case) == 2  # a new download, counted
    transfer = GrantDownload.objects.filter(grant__case=case).latest("started_at")
    assert (transfer.package_etag, transfer.package_bytes) == (response["ETag"], len(new))


def test_a_signed_in_recipients_bare_range_after_the_case_zip_changed_gets_the_whole_new_zip(
        ct_study, clinician_a, client_as, tmp_path):
    """The same for a signed-in recipient of a share (not a link), the case's preview zip: 200,
    the whole new zip, counted; HEAD the same, uncounted."""
    case = ct_study.case
    consultant = member(case.organization, Role.EXTERNAL_CONSULTANT, email="consultant@alpha.example")
    sharing.grant_create(case=case, grantee=consultant, by=clinician_a, permissions=["view", "download_preview"],
                         renditions=["preview"], download_limit=2, expires_at=timezone.now() + timedelta(hours=2))
    visitor = client_as(consultant)
    part = visitor.get(_case_url(case, "preview"), headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    begun = _body(part)
    assert _count(case) == 1

    _add_study(case, tmp_path / "second")
    rest = {"Range": f"bytes={len(begun)}-"}
    head = visitor.head(_case_url(case, "preview"), headers=rest)
    assert head.status_code == 200 and "Content-Range" not in head
    assert _count(case) == 1
    response = visitor.get(_case_url(case, "preview"), headers=rest)
    assert response.status_code == 200 and "Content-Range" not in response
    new = _body(response)
    assert len(new) == int(response["Content-Length"]) == int(head["Content-Length"])
    archive = zipfile.ZipFile(io.BytesIO(new))
    assert archive.testzip() is None
    assert len([name for name in archive.namelist() if name.endswith(".jpg")]) == 12  # both studies' previews
    assert _count(case) == 2


def test_staff_downloading_by_role_keep_their_range_when_it_names_the_version(ct_study, client_as, clinician_a):
    """Staff download on their role: no transfer is kept of it, so nothing says which version their
    first part is of. A Range from a byte after the first whose If-Range names the package as it
    is (a browser resuming) is honoured (206); one naming another version, or none (``curl -C -``,
    ``wget -c``), gets the whole package (200), never the rest of a version they may not have
    begun (tests/renditions/test_resume_splice.py)."""
    staff = client_as(clinician_a)
    etag = staff.head(_study_url(ct_study))["ETag"]
    response = staff.get(_study_url(ct_study), headers={"Range": "bytes=100-", "If-Range": etag})
    assert response.status_code == 206
    total = int(response["Content-Range"].rsplit("/", 1)[1])
    assert len(_body(response)) == total - 100
    for other in ({"If-Range": '"another-version"'}, {}):
        whole = staff.get(_study_url(ct_study), headers={"Range": "bytes=100-", **other})
        assert whole.status_code == 200 and len(_body(whole)) == total
