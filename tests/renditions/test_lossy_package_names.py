"""A lossy rendition's zip is not named as the diagnostic original's: the preview, the education
copy and the original of one study all came as ``2026-01-01_CT-Chest_V1.zip``, so a preview saved
beside the original (the browser renames it "(1)"), or an education copy a patient forwards to
another doctor, looked like the diagnostic original. The original's zip (and a case zip's study
folder of originals) says what it is as the others do: ``..._Original`` (found by QA: it was the
only download whose name did not say what it held)."""

from __future__ import annotations

import zipfile
from io import BytesIO

import pytest
from django.urls import reverse

from apps.renditions.packages import study_package

pytestmark = pytest.mark.django_db


def test_each_lossy_rendition_says_so_in_its_name(ct_study):
    for kind, suffix, prefix in (("original", "_Original", "IM"), ("lossless", "_Lossless", "IM"),
                                 ("preview", "_Preview", "PV"), ("education", "_Education", "ED")):
        package = study_package(ct_study, kind)
        assert package.filename == f"2026-01-01_CT-Chest_V1{suffix}.zip"
        images = [e.path for e in package.entries if not e.path.endswith(".txt")]
        assert images and all(p.startswith(f"2026-01-01_CT-Chest_V1{suffix}/S001_CT/{prefix}") for p in images)


def test_the_downloaded_zips_bear_those_names(ct_study, clinician_a, client_as):
    client = client_as(clinician_a)
    study_url = reverse("renditions:study_download", kwargs={"study_id": ct_study.public_id})
    case_url = reverse("renditions:case_download", kwargs={"case_id": ct_study.case.public_id})
    case = f"Case-{ct_study.case.public_id.hex[:8]}_"
    for url, kind, name in ((study_url, "education", "2026-01-01_CT-Chest_V1_Education"),
                            (case_url, "preview", f"{case}2026-01-01_CT-Chest_V1_Preview"),
                            (case_url, "original", f"{case}2026-01-01_CT-Chest_V1_Original"),
                            (study_url, "original", "2026-01-01_CT-Chest_V1_Original")):
        response = client.get(f"{url}?rendition={kind}")
        assert response.status_code == 200
        assert response["Content-Disposition"] == f'attachment; filename="{name}.zip"'
        body = b"".join(response.streaming_content)
        assert all(n.startswith(f"{name}/") for n in zipfile.ZipFile(BytesIO(body)).namelist())


def test_a_case_zips_study_folders_say_so_too(ct_study):
    """A case's preview or education zip held each study in a folder named as the original's
    (``..._V1_Preview/2026-01-01_CT-Chest_V1/``): taken out of the zip, it looked diagnostic."""
    from apps.renditions.packages import case_package

    case = f"Case-{ct_study.case.public_id.hex[:8]}_2026-01-01_CT-Chest_V1"
    for kind, suffix in (("original", "_Original"), ("lossless", "_Lossless"), ("preview", "_Preview"),
                         ("education", "_Education")):
        package = case_package(ct_study.case, [ct_study], kind)
        images = [e.path for e in package.entries if not e.path.endswith(".txt")]
        folder = f"{case}{suffix}/2026-01-01_CT-Chest_V1{suffix}/S001_CT/"
        assert images and all(p.startswith(folder) for p in images), (kind, images[:1])


def test_a_cases_lossless_and_original_zips_are_told_apart_by_name(ct_study, clinician_a, client_as):
    """A case's lossless-compressed zip and its original's came with the same file name (only their
    MANIFEST said which): the lossless copy's name, and its study's folder, end in ``_Lossless``;
    the original's in ``_Original``. So are a study's own two zips."""
    client = client_as(clinician_a)
    case_url = reverse("renditions:case_download", kwargs={"case_id": ct_study.case.public_id})
    study_url = reverse("renditions:study_download", kwargs={"study_id": ct_study.public_id})
    case = f"Case-{ct_study.case.public_id.hex[:8]}_2026-01-01_CT-Chest_V1"
    names = {}
    for scope, url, name in (("case", case_url, case), ("study", study_url, "2026-01-01_CT-Chest_V1")):
        for kind, suffix in (("original", "_Original"), ("lossless", "_Lossless")):
            response = client.get(f"{url}?rendition={kind}")
            assert response.status_code == 200
            names[scope, kind] = response["Content-Disposition"]
            assert names[scope, kind] == f'attachment; filename="{name}{suffix}.zip"'
            archive = zipfile.ZipFile(BytesIO(b"".join(response.streaming_content)))
            images = [n for n in archive.namelist() if n.endswith(".dcm")]
            inner = f"{name}{suffix}/2026-01-01_CT-Chest_V1{suffix}/" if scope == "case" else f"{name}{suffix}/"
            assert images and all(n.startswith(f"{inner}S001_CT/IM") for n in images), images[:1]
    assert names["case", "original"] != names["case", "lossless"]
    assert names["study", "original"] != names["study", "lossless"]
