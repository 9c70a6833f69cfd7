"""Found by QA, downloading a shared case as a consultant with a Spanish session:

- a whole case's zip was named as its study (``2026-01-01_CT-Chest_V1.zip``) and so held the
  study's folder under a folder of the same name (``2026-01-01_CT-Chest_V1/2026-01-01_CT-Chest_V1/
  S001_CT/...``); it is named as a case's now (``Case-<short id>_...``, never the case's title),
  each study's folder one level below;
- MANIFEST.txt was English whatever the asker's language; it is written in the request's language
  now (the files' labels and the reasons a file was left out), its values (paths, sha256s, sizes)
  and each file's row form unchanged."""

from __future__ import annotations

import io
import itertools
import re
import zipfile

import pytest
from django.urls import reverse
from django.utils.translation import gettext_noop

from apps.cases.models import Case
from apps.core import i18n
from apps.renditions.models import Kind, RenditionFile, Status
from tests.renditions.conftest import ingest_folder

pytestmark = pytest.mark.django_db

#: a file's row of the manifest, in any language: sha256, bytes, label, path
_ROW = re.compile(r"^([0-9a-f]{64})  ([0-9]+)  (.+)  (\S+)$")


def _get(client, url: str, **headers):
    response = client.get(url, **headers)
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    return response, zipfile.ZipFile(io.BytesIO(body))


def _case_url(case, kind="original") -> str:
    return reverse("renditions:case_download", kwargs={"case_id": case.public_id}) + f"?rendition={kind}"


def _study_url(study, kind="original") -> str:
    return reverse("renditions:study_download", kwargs={"study_id": study.public_id}) + f"?rendition={kind}"


def _manifest(archive: zipfile.ZipFile) -> tuple[str, dict[str, tuple[str, int, str]]]:
    [name] = [n for n in archive.namelist() if n.endswith("/MANIFEST.txt")]
    text = archive.read(name).decode("utf-8")
    rows = {m[4]: (m[1], int(m[2]), m[3]) for line in text.splitlines() if (m := _ROW.match(line))}
    return text, rows


# ----------------------------------------------------------------------------- the case's zip

def test_a_case_zip_is_named_as_the_case_and_holds_its_study_one_level_below(ct_study, clinician_a, client_as):
    case = ct_study.case
    Case.objects.filter(pk=case.pk).update(title="Testpatient Fictional MRN SYN-0001")  # free text: may name anyone
    response, archive = _get(client_as(clinician_a), _case_url(case))
    root = f"Case-{case.public_id.hex[:8]}_2026-01-01_CT-Chest_V1_Original"
    assert response["Content-Disposition"] == f'attachment; filename="{root}.zip"'
    names = archive.namelist()
    images = [n for n in names if n.endswith(".dcm")]
    assert names == [f"{root}/MANIFEST.txt", *images] and len(images) == 6
    assert all(n.startswith(f"{root}/2026-01-01_CT-Chest_V1_Original/S001_CT/IM0000") for n in images)
    for name in names:  # no folder holds one of its own name
        parts = name.split("/")
        assert all(a != b for a, b in itertools.pairwise(parts)), name
        assert "Testpatient" not in name and "SYN" not in name
    # the study's own zip is as it was: the study's name, its series one level below
    _response, own = _get(client_as(clinician_a), _study_url(ct_study))
    assert all(n.startswith("2026-01-01_CT-Chest_V1_Original/") for n in own.namelist())


def test_a_case_of_two_studies_holds_a_folder_for_each(ct_study, clinician_a, client_as, tmp_path):
    from bench.ingest.synthetic import write_ct_series

    write_ct_series(tmp_path / "second", slices=2, rows=16, columns=16)
    [second] = ingest_folder(tmp_path / "second", ct_study.organization, case=ct_study.case)
    response, archive = _get(client_as(clinician_a), _case_url(ct_study.case))
    root = f"Case-{ct_study.case.public_id.hex[:8]}_2026-01-01_CT-Chest_V1_Original"
    assert response["Content-Disposition"] == f'attachment; filename="{root}.zip"'
    folders = {n.split("/")[1] for n in archive.namelist() if n.endswith(".dcm")}
    assert {n.split("/")[0] for n in archive.namelist()} == {root}
    assert folders == {"2026-01-01_CT-Chest_V1_Original", "2026-01-01_CT-Chest_V1_2_Original"}, folders
    assert second.case_id == ct_study.case_id


# ----------------------------------------------------------------------------- the manifest's language

def _spanish(user):
    user.language = "es"
    user.save(update_fields=["language"])


def test_the_manifest_is_in_the_askers_language_its_values_unchanged(ct_study, clinician_a, client_as):
    client = client_as(clinician_a)
    english, en_archive = _get(client, _study_url(ct_study))
    _en_text, en_rows = _manifest(en_archive)
    assert {label for _sha, _size, label in en_rows.values()} == {"Diagnostic original"}

    _spanish(clinician_a)
    spanish, es_archive = _get(client, _study_url(ct_study))
    es_text, es_rows = _manifest(es_archive)
    # the files' labels in Spanish; their paths, sha256s and sizes as in English
    assert {label for _sha, _size, label in es_rows.values()} == {"Original diagnóstico"}
    assert {p: r[:2] for p, r in es_rows.items()} == {p: r[:2] for p, r in en_rows.items()} and len(es_rows) == 6
    assert "Diagnostic original" not in es_text and "Original diagnóstico" in es_text
    # the names stay ASCII English, whoever asks; the bytes differ, so a resume across languages
    # gets the whole package rather than a slice of the other one
    assert es_archive.namelist() == en_archive.namelist()
    assert spanish["Content-Disposition"] == english["Content-Disposition"]
    assert spanish["ETag"] != english["ETag"]
    assert spanish["X-Lightbox-Label"] == english["X-Lightbox-Label"] == "Diagnostic original"
    # the same asker in the same language gets the same bytes: a resume matches
    again, _archive = _get(client, _study_url(ct_study))
    assert again["ETag"] == spanish["ETag"]
    total = int(spanish["Content-Length"])
    rest = client.get(_study_url(ct_study), HTTP_RANGE=f"bytes={total // 2}-", HTTP_IF_RANGE=spanish["ETag"])
    assert rest.status_code == 206


def test_a_case_manifest_says_why_a_file_was_left_out_in_the_askers_language(ct_study, clinician_a, client_as):
    left_out = RenditionFile.objects.filter(study=ct_study, kind=Kind.PREVIEW).order_by("pk").first()
    RenditionFile.objects.filter(pk=left_out.pk).update(
        status=Status.UNAVAILABLE, blob=None,
        **i18n.explained(i18n.Deferred(gettext_noop("The file cannot be read as DICOM."))))
    client = client_as(clinician_a)
    _response, archive = _get(client, _case_url(ct_study.case, "preview"))
    text, rows = _manifest(archive)
    assert "The file cannot be read as DICOM." in text and len(rows) == 5

    _spanish(clinician_a)
    _response, archive = _get(client, _case_url(ct_study.case, "preview"))
    text, rows = _manifest(archive)
    assert "El archivo no se puede leer como DICOM." in text
    assert "The file cannot be read as DICOM." not in text
    assert {label for _sha, _size, label in rows.values()} == {"Vista previa - con pérdida"} and len(rows) == 5
