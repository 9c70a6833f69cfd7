"""Logs name an error by its type, never by its message, and reasons by neither: a library's message
may quote the file's values. pydicom's badVR.dcm says Number of Frames = "1A", and decoding it fails
with "invalid literal for int() with base 10: '1A'"; the lossless copy's reason quoted it. Here
the value is a fictional patient's name, as a damaged file may hold one there."""

from __future__ import annotations

import logging
import warnings

import pydicom
import pytest
from django.urls import reverse
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from apps.imaging.models import Instance
from apps.renditions.models import Kind, Rendition, RenditionFile, Status
from apps.renditions.services import study_renditions_make
from tests.dicomfiles import pydicom_file, read_dataset
from tests.factories import CaseFactory
from tests.renditions.conftest import ingest_folder

pytestmark = pytest.mark.django_db

NAME = "ROE^JANE"  # fictional


def test_an_error_quoting_a_header_value_is_named_by_its_type(org_a, clinician_a, client_as, tmp_path, caplog):
    ds = read_dataset(pydicom_file("badVR.dcm"))
    ds[0x00280008] = RawDataElement(Tag(0x00280008), "IS", len(NAME), NAME.encode(), 0, False, True)
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "bad.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=NAME.replace("^", r"\^")):  # the message pydicom gives
            pydicom.dcmread(tmp_path / "in" / "bad.dcm", force=True).pixel_array  # noqa: B018
    caplog.set_level(logging.DEBUG)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    [study] = ingest_folder(tmp_path / "in", org_a, case=case)
    inst = Instance.objects.get(study=study)
    response = client_as(clinician_a).get(reverse("viewer:frame", kwargs={"instance_id": inst.public_id}),
                                          {"quality": "diagnostic"})
    assert response["X-Lightbox-Frame"] == "undecodable" and NAME not in response.content.decode()
    study_renditions_make(study_id=study.pk)
    lossless = RenditionFile.objects.get(study=study, kind=Kind.LOSSLESS)
    assert lossless.status == Status.UNAVAILABLE
    assert lossless.reason == "The image data in this file is damaged or in an unsupported form."
    for row in [*RenditionFile.objects.filter(study=study), *Rendition.objects.filter(study=study)]:
        assert NAME not in row.reason and NAME not in str(row.reason_parts), row.kind
    assert NAME not in caplog.text
