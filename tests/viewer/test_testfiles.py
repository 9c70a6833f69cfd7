"""Must-show 2: every pydicom test file that pydicom itself can decode renders a frame through
the frame endpoint's render path; every other file (compressed in a way no installed codec
reads, truncated, no pixel data, not DICOM at all) gives a clear message from the endpoint,
never a 500.

Files come from ``pydicom.data.get_testdata_files()`` (pydicom's own and pydicom-data's),
fetched with ``get_testdata_file(name, download=False)``: never downloaded."""

from __future__ import annotations

import io
import os
import warnings

import pytest
from django.urls import reverse
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.pixels import pixel_array

from apps.imaging.pixels import UndecodableFrame
from apps.viewer import services

NAMES = sorted({os.path.basename(p) for p in get_testdata_files() if os.path.isfile(p)})
REQUEST = services.FrameRequest(quality="diagnostic", size=256)


def _path(name: str) -> str | None:
    path = get_testdata_file(name, download=False)
    return path if path and os.path.isfile(path) else None


@pytest.fixture(scope="module")
def reference():
    """pydicom's bare verdict per file: the shape of frame 0, or None when it cannot decode it.
    Computed once per file per module."""
    verdicts: dict[str, tuple[int, int] | None] = {}

    def decode(path: str) -> tuple[int, int] | None:
        if path not in verdicts:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = dcmread(path, force=True)
                    frames = int(ds.get("NumberOfFrames") or 1)
                    arr = pixel_array(ds, index=0 if frames > 1 else None)
                verdicts[path] = (int(arr.shape[0]), int(arr.shape[1]))
            except Exception:
                verdicts[path] = None
        return verdicts[path]

    return decode


def test_the_test_files_are_there():
    assert len(NAMES) > 100, "pydicom's and pydicom-data's test files are expected locally"


@pytest.mark.parametrize("name", NAMES)
def test_file_that_pydicom_decodes_renders_a_frame(name, reference):
    path = _path(name)
    if path is None:
        pytest.skip(f"{name} is not present locally")
    shape = reference(path)
    try:
        rendered = services.frame_render(src=path, request=REQUEST)
    except UndecodableFrame as exc:
        assert shape is None, f"pydicom decodes {name} but the viewer could not: {exc.reason}"
        assert exc.reason and len(exc.reason) < 200
        return
    assert rendered.content_type == "image/png"
    image = Image.open(io.BytesIO(rendered.body))
    if shape is not None:
        rows, columns = shape
        scale = min(1.0, 256 / max(rows, columns))
        assert abs(image.size[0] - columns * scale) <= 1 and abs(image.size[1] - rows * scale) <= 1


@pytest.mark.django_db
def test_files_pydicom_cannot_decode_give_a_message_through_the_endpoint(reference, org_a, clinician_a, client_as):
    from apps.imaging.blobs import put_blob
    from tests.factories import CaseFactory, InstanceFactory, SeriesFactory, StudyFactory

    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    series = SeriesFactory(organization=org_a, study=StudyFactory(organization=org_a, case=case))
    client = client_as(clinician_a)
    tried, wrong = [], []
    for name in NAMES:
        path = _path(name)
        if path is None or reference(path) is not None:
            continue
        with open(path, "rb") as fh:
            blob = put_blob(fh, organization=org_a)
        instance = InstanceFactory(organization=org_a, series=series, blob=blob)
        url = reverse("viewer:frame", kwargs={"instance_id": instance.public_id}) + "?quality=diagnostic&size=256"
        response = client.get(url)
        tried.append(name)
        if response.status_code != 200:
            wrong.append((name, response.status_code))
        elif response["Content-Type"] != "image/png":
            body = response.json()
            if not (body["error"] == "undecodable" and body["message"] and body["reason"]):
                wrong.append((name, body))
    assert len(tried) > 20, tried  # README, SR, RT plans, truncated and unsupported compressed files ...
    assert not wrong
