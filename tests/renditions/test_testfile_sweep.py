"""Everything after ingest, for pydicom's test files that ingest accepts: each file is ingested
alone through the real services (a case of its own) and every consumer of its stored instance is
asked for it: the viewer's frame endpoint (diagnostic PNG, preview JPEG, low first paint) for the
first and the last frame, the renditions (original, lossless-compressed DICOM, labelled preview,
education copy) and their study downloads, the de-identified export and its download, and the
study, case and viewer pages.

Expected of each: an image that is right (the served frame follows pydicom's own pixels: same
colour model, linear in the modality values within the window, inverted for MONOCHROME1), or a
labelled refusal (the frame answers "undecodable" with a reason, a rendition file is "not
available" with a reason that is not "Unexpected error", the export lists the file as excluded
with its reason); never a 500, an exception, or an image silently wrong.

The whole corpus (129 accepted files) takes over two minutes; ``FILES`` is a choice of 55 that
covers each transfer syntax (implicit and explicit little endian, big endian, deflated, RLE,
JPEG baseline, extended, lossless, JPEG-LS, JPEG 2000 lossless and lossy), each photometric
interpretation in the corpus (MONOCHROME1/2, RGB native and planar, YBR_FULL, YBR_FULL_422,
YBR_ICT, YBR_RCT, PALETTE COLOR with plain and segmented tables, little and big endian), bit depths
1, 8, 12, 16 and 32, multi-frame files (up to 120 frames), the files ingest accepts since its
truncation fixes (trailing padding, Pixel Data without a VR), and those nothing here can decode
or that hold no pixels. Colour models the corpus lacks (HSV, ARGB, CMYK, YBR_PARTIAL_*, YBR_ICT and
YBR_RCT outside JPEG 2000, a palette with an Alpha table) are generated. Files are read with
``get_testdata_file(name, download=False)``: never downloaded."""

from __future__ import annotations

import io
import re
import shutil
import warnings
import zipfile

import numpy as np
import pydicom
import pytest
from django.urls import reverse
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGLSLossless, RLELossless, generate_uid

from apps.core.i18n import translate
from apps.deid.models import DeidExportFile, Outcome, State
from apps.deid.profile import Reason
from apps.deid.services import deid_export_run, deid_export_start
from apps.imaging import pixels
from apps.imaging.blobs import open_blob
from apps.imaging.models import FileOutcome, IngestFileResult, Instance
from apps.renditions import encoders
from apps.renditions.models import Kind, Label, Rendition, RenditionFile, Status
from apps.renditions.services import education_image, study_renditions_make
from apps.viewer import services as frames
from tests.dicomfiles import pydicom_file, read_dataset
from tests.factories import CaseFactory
from tests.renditions.conftest import assert_frames_and_copies_refused, ingest_folder

pytestmark = pytest.mark.django_db

#: files nothing installed here decodes (pydicom neither): every consumer refuses them, labelled
UNDECODABLE = {"JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm", "badVR.dcm"}
#: objects without pixel data (RT plan, structured reports, a waveform)
NO_PIXELS = {"rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm", "reportsi_with_empty_number_tags.dcm"}

FILES = sorted({
    # implicit / explicit little endian, deflated; CT and MR; trailing padding; overlays
    "CT_small.dcm", "MR_small_implicit.dcm", "MR_small_padded.dcm", "image_dfl.dcm",
    "MR-SIEMENS-DICOM-WithOverlays.dcm", "eCT_Supplemental.dcm", "mlut_18.dcm", "vlut_04.dcm",
    # big endian: monochrome, multi-frame, RGB, palette (plain and segmented tables)
    "MR_small_bigendian.dcm", "emri_small_big_endian.dcm", "ExplVR_BigEnd.dcm", "SC_rgb_small_odd_big_endian.dcm",
    "OBXXXX1A_expb.dcm", "OBXXXX1A_expb_2frame.dcm", "gdcm-US-ALOKA-16_big.dcm",
    # RLE
    "MR_small_RLE.dcm", "emri_small_RLE.dcm", "SC_rgb_rle_16bit_2frame.dcm", "OBXXXX1A_rle.dcm",
    "rtdose_rle_1frame.dcm",
    # JPEG baseline (RGB, YBR_FULL, YBR_FULL_422, odd size, 120 frames), extended, lossless
    "SC_rgb_jpeg.dcm", "SC_jpeg_no_color_transform.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm",
    "SC_rgb_small_odd_jpeg.dcm", "color3d_jpeg_baseline.dcm", "JPGExtended.dcm", "JPEG-LL.dcm",
    "JPGLosslessP14SV1_1s_1f_8b.dcm", "bad_sequence.dcm",
    # JPEG-LS and JPEG 2000 (lossless and lossy; YBR_ICT, YBR_RCT; multi-frame)
    "MR_small_jpeg_ls_lossless.dcm", "emri_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm",
    "emri_small_jpeg_2k_lossless.dcm", "JPEG2000.dcm", "J2K_pixelrep_mismatch.dcm", "US1_J2KI.dcm", "US1_J2KR.dcm",
    "GDCMJ2K_TextGBR.dcm",
    # MONOCHROME1 (uncompressed, but once lossy); native colour: planar, YBR, 16 and 32 bits; palette
    "RG3_UNCI.dcm", "color-pl.dcm", "SC_ybr_full_uncompressed.dcm", "SC_ybr_full_422_uncompressed.dcm",
    "SC_rgb_32bit.dcm", "OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm",
    # 1 bit, 3 frames; 32-bit dose grid, 15 frames
    "liver.dcm", "rtdose.dcm",
    *UNDECODABLE, *NO_PIXELS,
})
QUALITIES = ("diagnostic", "preview", "low")
BIG_ENDIAN = "The original is big-endian (a retired transfer syntax): no lossless copy is made of it."


def _palette(ds: pydicom.Dataset, indices: np.ndarray) -> np.ndarray:
    """The palette applied here, in the file's byte order (pydicom reads plain 16-bit tables in
    the machine's order; its segmented tables it reads right)."""
    if "RedPaletteColorLookupTableData" not in ds:
        return apply_color_lut(indices, ds)
    order = "<" if ds.original_encoding[1] else ">"
    first = ds.RedPaletteColorLookupTableDescriptor[1]
    tables = [np.frombuffer(ds[f"{c}PaletteColorLookupTableData"].value, dtype=f"{order}u2")
              for c in ("Red", "Green", "Blue")]
    at = np.clip(indices.astype(np.int64) - first, 0, len(tables[0]) - 1)
    return np.stack([t[at] for t in tables], axis=-1)


def _reference(ds: pydicom.Dataset, frame: int) -> tuple[np.ndarray, bool]:
    """pydicom's own pixels of ``frame``: (modality values, or RGB; colour or not)."""
    count = int(ds.get("NumberOfFrames") or 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = pixel_array(ds, index=frame if count > 1 else None)
    photometric = str(ds.PhotometricInterpretation).strip()
    if photometric == "PALETTE COLOR":
        return _palette(ds, arr), True
    if arr.ndim == 3:
        return arr, True
    return apply_modality_lut(arr, ds), False


def _follows(served: np.ndarray, reference: np.ndarray, colour: bool, window: str, monochrome1: bool) -> float:
    """How closely the served 8-bit frame follows the reference (a correlation, 1.0 when
    exactly linear): monochrome values are clipped to the served window first."""
    expected = reference.astype(np.float64)
    if not colour:
        center, width = (float(v) for v in window.split("/"))
        expected = np.clip(expected, center - width / 2, center + width / 2)
        expected = -expected if monochrome1 else expected
    a, b = served.astype(np.float64).ravel(), expected.ravel()
    if a.std() == 0 or b.std() == 0:
        return 1.0 if a.std() == b.std() else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _check_frames(client, inst: Instance, ds: pydicom.Dataset, name: str) -> None:
    url = reverse("viewer:frame", kwargs={"instance_id": inst.public_id})
    last = max(inst.frames or 1, 1) - 1
    for frame in sorted({0, last}):
        reference = None if name in UNDECODABLE | NO_PIXELS else _reference(ds, frame)
        for quality in QUALITIES:
            response = client.get(f"{url}?quality={quality}&frame={frame}")
            where = (name, frame, quality)
            assert response.status_code == 200, where
            if reference is None:
                body = response.json()
                assert response["X-Lightbox-Frame"] == "undecodable", where
                assert body["error"] == "undecodable" and body["message"] and body["reason"], where
                continue
            arr, colour = reference
            assert response["Content-Type"] == ("image/png" if quality == "diagnostic" else "image/jpeg"), where
            image = Image.open(io.BytesIO(response.content))
            image.load()
            assert image.mode == ("RGB" if colour else "L"), where
            rows, columns = arr.shape[:2]
            limit = frames.LIMITS[quality] if quality != "diagnostic" else max(rows, columns)
            scale = min(1.0, limit / max(rows, columns))
            assert abs(image.size[0] - columns * scale) <= 1 and abs(image.size[1] - rows * scale) <= 1, where
            if quality == "diagnostic":
                lossy = str(ds.get("LossyImageCompression") or "") == "01" or ds.file_meta.TransferSyntaxUID in (
                    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81")
                assert response["X-Lightbox-Frame"] == ("lossy" if lossy else "diagnostic"), where
                photometric = str(ds.PhotometricInterpretation).strip()
                follows = _follows(np.asarray(image), arr, colour, response["X-Lightbox-Window"],
                                   photometric == "MONOCHROME1")
                assert follows > 0.98, (where, follows)
            else:
                assert response["X-Lightbox-Frame"] == "preview", where


def _check_renditions(study, name: str, ds: pydicom.Dataset) -> None:
    study_renditions_make(study_id=study.pk)
    made = {f.kind: f for f in RenditionFile.objects.filter(study=study).select_related("blob")}
    assert set(made) == set(Kind.values), name  # one instance: it is the education key image too
    assert made[Kind.ORIGINAL].status == Status.READY, name
    for kind, f in made.items():
        if f.status != Status.READY:
            assert f.status == Status.UNAVAILABLE and f.reason, (name, kind)
            assert "unexpected error" not in f.reason.lower(), (name, kind, f.reason)
    if ds.original_encoding[1] is False and "PixelData" in ds:
        # no lossless copy of a big-endian file: said plainly, not as three codecs' error messages
        assert (made[Kind.LOSSLESS].status, made[Kind.LOSSLESS].reason) == (Status.UNAVAILABLE, BIG_ENDIAN), name
    shown = name not in UNDECODABLE | NO_PIXELS
    assert (made[Kind.PREVIEW].status == Status.READY) == shown, (name, made[Kind.PREVIEW].reason)
    assert (made[Kind.EDUCATION].status == Status.READY) == shown, (name, made[Kind.EDUCATION].reason)
    if not shown:
        return
    middle, colour = _reference(ds, max(int(ds.get("NumberOfFrames") or 1), 1) // 2)
    with open_blob(made[Kind.PREVIEW].blob) as fh:
        preview = Image.open(io.BytesIO(fh.read()))
        preview.load()
    assert preview.mode == ("RGB" if colour else "L"), name
    above_band = np.asarray(preview)[: int(preview.size[1] * 0.9)]
    if np.ptp(middle) > 0:  # an image, not one flat colour (the big-endian palette came out black)
        assert np.ptp(above_band) > 0, name
    education = Image.open(io.BytesIO(education_image(file=made[Kind.EDUCATION])))
    education.load()
    assert education.mode == ("RGB" if colour else "L"), name
    if made[Kind.LOSSLESS].status == Status.READY:
        with open_blob(made[Kind.LOSSLESS].blob) as fh:
            copy = pydicom.dcmread(io.BytesIO(fh.read()))
        assert copy.file_meta.TransferSyntaxUID.is_compressed, name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert np.array_equal(copy.pixel_array, ds.pixel_array), name


def _check_deid(client, study, clinician, ds: pydicom.Dataset, name: str) -> None:
    export = deid_export_start(study=study, by=clinician, pseudonym="SWEEP-1", enqueue=False)
    export = deid_export_run(export_id=export.pk)
    assert export.state == State.READY, (name, export.reason)
    [row] = DeidExportFile.objects.filter(export=export).select_related("blob")
    if row.outcome == Outcome.EXCLUDED:
        # left out for what its pixels may show, or for having none: never for failing, nor for
        # being a secondary image (the MR_small files are DERIVED\SECONDARY, the Siemens one an MPR)
        assert row.reason in {Reason.BURNED_IN_LIKELY, Reason.SECONDARY_CAPTURE, Reason.NO_PIXELS}, (name, row.reason)
        assert (row.reason == Reason.NO_PIXELS) == (name in NO_PIXELS), name
    else:
        with open_blob(row.blob) as fh:
            out = read_dataset(io.BytesIO(fh.read()))
        assert out.PatientIdentityRemoved == "YES" and out.PixelData == ds.PixelData, name
    response = client.get(reverse("deid:export_download", kwargs={"deidexport_id": export.public_id}))
    if row.outcome == Outcome.EXPORTED:
        assert response.status_code == 200, name
        assert zipfile.ZipFile(io.BytesIO(_body(response))).testzip() is None, name
    else:
        assert response.status_code == 302, name  # nothing to download: back to the export's page


@pytest.mark.parametrize("name", FILES)
def test_every_consumer_of_an_ingested_test_file(name, org_a, clinician_a, client_as, tmp_path):
    path = pydicom_file(name)
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(path, folder / name)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    [study] = ingest_folder(folder, org_a, case=case)
    inst = Instance.objects.select_related("blob").get(study=study)
    assert IngestFileResult.objects.get(instance=inst).outcome == FileOutcome.INGESTED
    ds = read_dataset(path)
    client = client_as(clinician_a)

    _check_frames(client, inst, ds, name)
    _check_renditions(study, name, ds)
    page = client.get(study.get_absolute_url()).content.decode()
    for kind in Kind.values:
        response = client.get(reverse("renditions:study_download", kwargs={"study_id": study.public_id}),
                              {"rendition": kind})
        # a rendition none of whose images could be made is not downloaded, as the study's page
        # says (tests/renditions/test_mixed_and_unavailable_packages.py); the original always is
        row = re.search(rf'<tr data-testid="rendition-{kind}">(.*?)</tr>', page, re.S).group(1)
        if Rendition.objects.get(study=study, kind=kind).status == Status.UNAVAILABLE:
            assert kind != Kind.ORIGINAL and response.status_code == 404, (name, kind)
            # a lossy original's lossless row says there is no copy and why (a029204)
            said = "Not available" in row or (kind == Kind.LOSSLESS and "No lossless copy" in row)
            assert said and f'data-testid="download-{kind}"' not in row, (name, kind)
            continue
        assert response.status_code == 200, (name, kind)
        assert f'data-testid="download-{kind}"' in row, (name, kind)
        assert zipfile.ZipFile(io.BytesIO(_body(response))).testzip() is None, (name, kind)
    for url in (study.get_absolute_url(), case.get_absolute_url(),
                reverse("viewer:viewer", kwargs={"study_id": study.public_id})):
        assert client.get(url).status_code == 200, (name, url)
    _check_deid(client, study, clinician_a, ds, name)


def test_the_chosen_files_are_there():
    missing = [name for name in FILES if not get_testdata_file(name, download=False)]
    assert not missing


@pytest.mark.parametrize(("big", "little"), [("OBXXXX1A_expb.dcm", "OBXXXX1A.dcm"),
                                             ("OBXXXX1A_expb_2frame.dcm", "OBXXXX1A_2frame.dcm")])
def test_a_big_endian_palette_shows_the_colours_of_its_little_endian_copy(big, little):
    """pydicom's apply_color_lut read a big-endian file's 16-bit palette byte-swapped: its entries
    (0xFF00 for full red) became 0x00FF, and the 8 bits shown of them 0: a black image, in the
    viewer and in the preview and education renditions."""
    request = frames.FrameRequest(quality="diagnostic")
    shown = [np.asarray(Image.open(io.BytesIO(frames.frame_render(src=pydicom_file(n), request=request).body)))
             for n in (big, little)]
    assert shown[1].max() > 0 and np.array_equal(shown[0], shown[1])


def _synthetic_colour(folder, photometric: str, samples: int, transfer_syntax=ExplicitVRLittleEndian) -> None:
    """A 16x16 8-bit image of a fictional patient, in ``transfer_syntax`` (native: explicit VR
    little endian), its samples in the colour model ``photometric`` (encoded as RGB, then named)."""
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid() for _ in range(3))
    ds.PatientName, ds.PatientID, ds.Modality = "Synthetic^Colour", "SYN-COLOUR", "OT"
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = samples, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = (np.arange(16 * 16 * samples) % 251).astype(np.uint8).tobytes()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if transfer_syntax != ExplicitVRLittleEndian:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.compress(transfer_syntax, generate_instance_uid=False)
    ds.PhotometricInterpretation = photometric
    folder.mkdir()
    ds.save_as(folder / "colour.dcm", enforce_file_format=True)


@pytest.mark.parametrize(("photometric", "samples", "transfer_syntax"), [
    ("HSV", 3, ExplicitVRLittleEndian), ("YBR_PARTIAL_422", 3, ExplicitVRLittleEndian),
    ("YBR_PARTIAL_420", 3, ExplicitVRLittleEndian), ("ARGB", 4, ExplicitVRLittleEndian),
    ("CMYK", 4, ExplicitVRLittleEndian),
    # JPEG 2000's component transforms, outside JPEG 2000
    ("YBR_ICT", 3, ExplicitVRLittleEndian), ("YBR_RCT", 3, ExplicitVRLittleEndian),
    ("YBR_ICT", 3, RLELossless), ("YBR_RCT", 3, JPEGLSLossless),
    # the JPEG and MPEG subsampled models, in codecs that do not convert colour
    ("YBR_PARTIAL_422", 3, RLELossless), ("YBR_PARTIAL_420", 3, RLELossless),
    ("YBR_PARTIAL_422", 3, JPEGLSLossless), ("YBR_PARTIAL_420", 3, JPEGLSLossless),
])
def test_a_colour_model_the_pixels_cannot_show_is_refused_by_name(photometric, samples, transfer_syntax, org_a,
                                                                    clinician_a, client_as, tmp_path):
    """pydicom converts YBR_FULL and YBR_FULL_422 samples to RGB (native, RLE and JPEG-LS alike),
    its JPEG 2000 decoder gives RGB of YBR_ICT and YBR_RCT, and a JPEG baseline/extended decoder
    of YBR_PARTIAL_422/420. HSV, and YBR_ICT, YBR_RCT and YBR_PARTIAL_422/420 in native, RLE or
    JPEG-LS data, it hands over as they are, and they were shown as if they were RGB: the wrong
    colours, unlabelled, in the viewer and in the preview and education copies. ARGB and CMYK it
    refuses, which read as a damaged file. The lossless copy is refused for the same reason (it
    was refused with its codecs' errors, or, for YBR_RCT, made as a JPEG 2000 copy that every
    decoder reads as RGB)."""
    _synthetic_colour(tmp_path / "in", photometric, samples, transfer_syntax)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    [study] = ingest_folder(tmp_path / "in", org_a, case=case)
    reason = f"This file's colour model ({photometric}) cannot be shown here."
    made = assert_frames_and_copies_refused(client_as(clinician_a), study, reason)
    assert (made[Kind.LOSSLESS].status, made[Kind.LOSSLESS].reason) == (Status.UNAVAILABLE, reason)
    url = reverse("viewer:frame", kwargs={"instance_id": Instance.objects.get(study=study).public_id})
    spanish = client_as(clinician_a).get(url, {"quality": "preview"}, HTTP_ACCEPT_LANGUAGE="es")
    assert spanish.status_code == 200 and photometric in spanish.json()["reason"]


@pytest.mark.parametrize("photometric", ["YBR_PARTIAL_422", "YBR_PARTIAL_420"])
def test_a_partial_ybr_jpeg_baseline_image_is_refused_not_shown_as_its_ycbcr(photometric, tmp_path):
    """pydicom's JPEG decoders (pylibjpeg-libjpeg, Pillow) return the codestream's Y, Cb and Cr,
    and pydicom converts only YBR_FULL and YBR_FULL_422 of them: a YBR_PARTIAL_422/420 JPEG
    baseline image was shown as its YCbCr samples (red as purple), as if a JPEG decoder had
    given RGB of it. It is refused by name in the viewer and the preview and education copies
    (a lossy original gets no lossless copy)."""
    rgb = np.zeros((32, 32, 3), dtype=np.uint8)
    rgb[:16, :, 0] = 220  # red above, blue below
    rgb[16:, :, 2] = 220
    jpeg = io.BytesIO()
    Image.fromarray(rgb).save(jpeg, format="JPEG", quality=95)
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid() for _ in range(3))
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, photometric, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([jpeg.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(tmp_path / "partial.dcm", enforce_file_format=True)
    reason = f"This file's colour model ({photometric}) cannot be shown here."
    with pytest.raises(pixels.UndecodableFrame) as refused:
        frames.frame_render(src=tmp_path / "partial.dcm", request=frames.FrameRequest(quality="diagnostic"))
    assert translate(refused.value.reason) == reason
    data = (tmp_path / "partial.dcm").read_bytes()
    for make in (encoders.preview_jpeg, encoders.education_dicom):
        with pytest.raises(encoders.NotEncodable) as refused:
            make(data)
        assert translate(refused.value.reason) == reason


def test_a_palette_with_an_alpha_table_is_shown_as_rgb_composited_on_black(tmp_path):
    """pydicom's apply_color_lut gives RGBA of a palette with an Alpha Palette Color Lookup Table:
    the 4 channels were taken for a monochrome frame and windowed, the diagnostic PNG was written
    as RGB over RGBA rows (a garbled image) and the preview and education copies failed. Each
    entry is shown over black as its alpha (0 transparent, the largest value opaque) says."""
    ds = read_dataset(pydicom_file("OBXXXX1A.dcm"))  # 256 entries of 16 bits
    alpha = np.arange(256, dtype="<u2") * 257  # index 0 transparent ... 255 opaque
    ds.AlphaPaletteColorLookupTableDescriptor = list(ds.RedPaletteColorLookupTableDescriptor)
    ds.AlphaPaletteColorLookupTableData = alpha.tobytes()
    ds["AlphaPaletteColorLookupTableData"].VR = "OW"
    ds.save_as(tmp_path / "alpha.dcm")
    indices = read_dataset(tmp_path / "alpha.dcm").pixel_array
    rgb = np.stack([np.frombuffer(ds[f"{c}PaletteColorLookupTableData"].value, dtype="<u2") >> 8
                    for c in ("Red", "Green", "Blue")], axis=-1)
    expected = np.rint(rgb[indices] * (indices[..., None] / 255.0)).astype(np.uint8)
    assert expected.max() > 0 and not np.array_equal(expected, rgb[indices])

    rendered = frames.frame_render(src=tmp_path / "alpha.dcm", request=frames.FrameRequest(quality="diagnostic"))
    shown = Image.open(io.BytesIO(rendered.body))
    assert shown.mode == "RGB" and np.array_equal(np.asarray(shown), expected)
    data = (tmp_path / "alpha.dcm").read_bytes()
    preview = Image.open(io.BytesIO(encoders.preview_jpeg(data)[0]))
    education = Image.open(io.BytesIO(next(generate_frames(
        pydicom.dcmread(io.BytesIO(encoders.education_dicom(data)[0])).PixelData, number_of_frames=1))))
    assert preview.mode == education.mode == "RGB"


@pytest.mark.parametrize("entries", [8, 16])
def test_a_palette_whose_descriptor_says_8_bits_over_16_bit_words_shows_its_colours(entries, tmp_path):
    """A LUT Descriptor saying 8 bits per entry over LUT Data of 16 bits per entry (pydicom reads
    them as 16-bit). Some writers store each 8-bit entry in a 16-bit word: their top 8 bits, all
    0, were shown, a black image. Others write full 16-bit entries under a descriptor that says 8
    (cornerstone's "incorrect LUT descriptor" case): those are shown by their top 8 bits, as
    before."""
    ds = read_dataset(pydicom_file("OBXXXX1A.dcm"))
    for colour in ("Red", "Green", "Blue"):
        table = np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, dtype="<u2")
        if entries == 8:
            ds[f"{colour}PaletteColorLookupTableData"].value = (table >> 8).astype("<u2").tobytes()
        descriptor = list(ds[f"{colour}PaletteColorLookupTableDescriptor"].value)
        ds[f"{colour}PaletteColorLookupTableDescriptor"].value = [*descriptor[:2], 8]
    ds.save_as(tmp_path / "palette8.dcm")
    request = frames.FrameRequest(quality="diagnostic")
    shown = [np.asarray(Image.open(io.BytesIO(frames.frame_render(src=src, request=request).body)))
             for src in (tmp_path / "palette8.dcm", pydicom_file("OBXXXX1A.dcm"))]
    assert shown[1].max() > 0 and np.array_equal(shown[0], shown[1])


@pytest.mark.parametrize("name", ["JPEGLSNearLossless_08.dcm", "SC_rgb_jls_lossy_line.dcm"])
def test_a_near_lossless_jpeg_ls_file_is_never_labelled_diagnostic(name, org_a, clinician_a, client_as, tmp_path):
    """JPEG-LS Lossy (Near-Lossless), 1.2.840.10008.1.2.4.81, is lossy by its transfer syntax,
    whether or not the file says Lossy Image Compression = 01 (pydicom's near-lossless files do
    not): its frames were labelled "diagnostic", its original "Diagnostic original", and a
    "Diagnostic - lossless compressed" copy was made of it. pydicom's files lack the study's
    identifiers, which ingest needs; they are added."""
    ds = read_dataset(pydicom_file(name))
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if keyword not in ds:
            setattr(ds, keyword, generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / name, enforce_file_format=True)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    [study] = ingest_folder(tmp_path / "in", org_a, case=case)
    inst = Instance.objects.get(study=study)
    response = client_as(clinician_a).get(reverse("viewer:frame", kwargs={"instance_id": inst.public_id}),
                                          {"quality": "diagnostic"})
    assert response["Content-Type"] == "image/png" and response["X-Lightbox-Frame"] == "lossy"
    study_renditions_make(study_id=study.pk)
    made = {f.kind: f for f in RenditionFile.objects.filter(study=study)}
    assert made[Kind.ORIGINAL].label == Label.LOSSY_SOURCE and made[Kind.ORIGINAL].source_lossy
    assert made[Kind.LOSSLESS].status == Status.UNAVAILABLE
    assert made[Kind.LOSSLESS].reason.startswith("The original is already lossy-compressed")


def test_float_pixel_data_with_nan_and_infinities_shows_its_finite_values(org_a, clinician_a, client_as, tmp_path):
    """A parametric map's Float Pixel Data may hold NaN (no value) and infinities: the default
    window, from the frame's value range, became NaN and the whole image black, labelled
    diagnostic, its window sent as "nan/nan"."""
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map
    ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = (generate_uid() for _ in range(3))
    ds.PatientName, ds.PatientID, ds.Modality = "Synthetic^Map", "SYN-MAP", "MR"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.BitsAllocated, ds.NumberOfFrames = 1, "MONOCHROME2", 32, 1
    ds.FloatPixelData = np.array([np.nan, np.inf, -np.inf, *range(13)], dtype="<f4").tobytes()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "map.dcm", enforce_file_format=True)
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    [study] = ingest_folder(tmp_path / "in", org_a, case=case)
    inst = Instance.objects.get(study=study)
    response = client_as(clinician_a).get(reverse("viewer:frame", kwargs={"instance_id": inst.public_id}),
                                          {"quality": "diagnostic"})
    assert response["X-Lightbox-Frame"] == "diagnostic"
    assert response["X-Lightbox-Window"] == response["X-Lightbox-Default-Window"] == "6/12"
    shown = np.asarray(Image.open(io.BytesIO(response.content))).ravel().tolist()
    assert shown[:3] == [0, 255, 0]  # NaN black, the infinities at either end
    assert shown[3] == 0 and shown[-1] == 255 and shown[3:] == sorted(shown[3:])  # the finite values, in order


@pytest.mark.parametrize(("slope", "intercept"), [("NaN", "0"), ("1e999", "0"), ("1", "NaN"), ("1", "-1e999")])
def test_a_rescale_that_is_not_a_number_is_refused_not_shown_blank(slope, intercept, org_a, clinician_a, client_as,
                                                                    tmp_path):
    """pydicom's CT_small.dcm with a Rescale Slope or Intercept of NaN or infinity: every
    Hounsfield value became NaN or infinite, and the frame a flat black or white image, labelled
    diagnostic; the preview and education copies were made of it."""
    ds = read_dataset(pydicom_file("CT_small.dcm"))
    ds.RescaleSlope = pydicom.valuerep.DSfloat(slope, validation_mode=0)
    ds.RescaleIntercept = pydicom.valuerep.DSfloat(intercept, validation_mode=0)
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / "ct.dcm")
    case = CaseFactory(organization=org_a, created_by=clinician_a, responsible_clinician=clinician_a)
    [study] = ingest_folder(tmp_path / "in", org_a, case=case)
    inst = Instance.objects.get(study=study)
    response = client_as(clinician_a).get(reverse("viewer:frame", kwargs={"instance_id": inst.public_id}),
                                          {"quality": "preview"})
    assert response.status_code == 200 and response["X-Lightbox-Frame"] == "undecodable"
    assert response.json()["reason"] == "The file's rescale values cannot be applied."
    study_renditions_make(study_id=study.pk)
    preview = RenditionFile.objects.get(study=study, kind=Kind.PREVIEW)
    assert (preview.status, preview.reason) == (Status.UNAVAILABLE, "The file's rescale values cannot be applied.")
