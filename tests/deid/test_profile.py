"""The PS3.15 Annex E basic profile on single files (apps.deid.profile): identifiers and UIDs gone,
private tags gone, marking present, pixels unchanged, UIDs consistent within one export, and
instances that may show identifying pixels excluded with their reason."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from apps.deid.profile import Excluded, Reason, deidentify_file, identity_left, uid_for
from bench.ingest.synthetic import ct_slice

KEY = b"k" * 32
PSEUDONYM = "CASE-PSEUDO-0001"
IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "InstitutionName",
               "ReferringPhysicianName", "AccessionNumber", "StudyID")
#: distinctive values written into every file of the sweep, so that "none of them is left" is a real check
MARKERS = {"PatientName": "Zebulon^Quixotica", "PatientID": "MRN-7731-QX", "PatientBirthDate": "19380217",
           "OtherPatientIDs": "OTHER-ID-55121", "InstitutionName": "Quixotica Memorial Hospital",
           "ReferringPhysicianName": "Drrefer^Yolanthe", "AccessionNumber": "ACC-99812-QX", "StudyID": "STUDY-QX-4"}
PRIVATE_MARKER = "PRIVATE-MARKER-8812"


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _uids(ds: Dataset) -> set[str]:
    """Every UID value of a dataset (sequences and file meta included) that names an instance,
    series, study, frame of reference ... : not the registered ones (SOP classes, transfer
    syntaxes), nor the writing software's implementation class."""
    from pydicom.uid import UID_dictionary

    found: set[str] = set()

    def visit(_ds, element):
        if element.VR == "UI" and element.value and element.tag != 0x00020012:
            for v in (element.value if element.VM > 1 else [element.value]):
                if v and str(v) not in UID_dictionary and len(str(v)) >= 10:
                    found.add(str(v))

    ds.walk(visit)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.walk(visit)
    return found


def _check_clean(original: Dataset, data: bytes, *, values: dict[str, str]) -> Dataset:
    out = pydicom.dcmread(io.BytesIO(data))
    # the profile keeps Manufacturer (K): MR_small's institution (TOSHIBA) is part of it (TOSHIBA_MEC)
    kept = {str(original.get("Manufacturer", "") or "")}
    for keyword, value in values.items():
        if keyword in IDENTIFYING and keyword in out and value:
            assert str(out.get(keyword) or "") != value, f"{keyword} kept its value"
        if value and len(value) >= 4 and not any(value in k for k in kept):
            assert value.encode() not in data, f"{keyword} left in the output"
    for uid in _uids(original):
        assert uid.encode() not in data, "an original UID is left in the output"
    assert not any(e.tag.is_private for e in out.iterall()), "a private tag is left"
    assert out.PatientIdentityRemoved == "YES"
    assert out.PatientName == PSEUDONYM and out.PatientID == PSEUDONYM
    assert "Basic" in out.DeidentificationMethod
    [code] = out.DeidentificationMethodCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.SOPInstanceUID.startswith("2.25.") and len(out.SOPInstanceUID) <= 64
    assert out.SOPClassUID == original.SOPClassUID
    return out


def _same_pixels(a: Dataset, b: Dataset) -> None:
    assert a.PixelData == b.PixelData  # the stored bytes, compressed or not
    try:
        expected = a.pixel_array
    except Exception:  # no decoder for this syntax: the bytes comparison stands
        return
    assert np.array_equal(expected, b.pixel_array)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicom_files_lose_identifiers_and_uids_keep_pixels(name):
    path = get_testdata_file(name)
    original = pydicom.dcmread(path)
    values = {k: str(original.get(k, "") or "") for k in IDENTIFYING}
    assert values["PatientName"] and values["InstitutionName"]  # the check has something to find
    data = deidentify_file(open(path, "rb").read(), pseudonym=PSEUDONYM, key=KEY).data
    out = _check_clean(original, data, values=values)
    assert out.StudyDate != original.StudyDate  # dates: replaced by a dummy as the table says
    _same_pixels(original, out)


def _sweep_files() -> list[str]:
    files = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in get_testdata_files("*.dcm"):
            try:
                ds = pydicom.dcmread(path)
                ds.SOPInstanceUID, ds.SOPClassUID  # noqa: B018
            except Exception:  # the sweep covers the files that parse as instances
                continue
            files.append(path)
    return files


SWEEP = _sweep_files()


def test_sweep_finds_files():
    assert len(SWEEP) > 50


@pytest.mark.parametrize("path", SWEEP, ids=lambda p: p.rsplit("/", 1)[-1])
def test_sweep_no_identifier_uid_or_private_tag_survives(path):
    """Each pydicom test file that parses, with distinctive identifiers and a private tag written
    into it: either excluded with a reason, or clean (and its pixels unchanged)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        for keyword, value in MARKERS.items():
            setattr(ds, keyword, value)
        ds.private_block(0x0011, "LIGHTBOX SWEEP", create=True).add_new(0x01, "LO", PRIVATE_MARKER)
        try:
            source = _bytes(ds)
        except Exception:  # a file pydicom cannot write back is out of scope
            pytest.skip("pydicom cannot write this file back")
        try:
            output = deidentify_file(source, pseudonym=PSEUDONYM, key=KEY)
        except Excluded as exc:
            assert exc.reason in Reason.values
            return
        original = pydicom.dcmread(io.BytesIO(source))
        out = _check_clean(original, output.data, values={**MARKERS, "private": PRIVATE_MARKER})
        if "PixelData" in original:
            assert out.PixelData == original.PixelData


def _study(n: int = 4) -> list[Dataset]:
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    slices = []
    for i in range(n):
        ds = ct_slice(study_uid=study_uid, series_uid=series_uid, index=i, rows=8, columns=8, seed=bytes(128))
        ds.FrameOfReferenceUID = frame_uid
        slices.append(ds)
    for i in range(1, n):  # each slice references the one before it
        ref = Dataset()
        ref.ReferencedSOPClassUID = slices[i - 1].SOPClassUID
        ref.ReferencedSOPInstanceUID = slices[i - 1].SOPInstanceUID
        slices[i].ReferencedImageSequence = Sequence([ref])
    return slices


def test_uids_map_consistently_within_one_export():
    originals = _study(4)
    outs = [pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
            for ds in originals]
    assert len({o.StudyInstanceUID for o in outs}) == 1
    assert len({o.SeriesInstanceUID for o in outs}) == 1
    assert len({o.FrameOfReferenceUID for o in outs}) == 1
    assert len({o.SOPInstanceUID for o in outs}) == 4
    for i in range(1, 4):  # references follow the instances they name
        assert outs[i].ReferencedImageSequence[0].ReferencedSOPInstanceUID == outs[i - 1].SOPInstanceUID
    assert outs[0].StudyInstanceUID == uid_for(KEY, originals[0].StudyInstanceUID)
    # the same input gives the same output within the export; another export maps differently
    again = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(originals[0]), pseudonym=PSEUDONYM, key=KEY).data))
    assert again.SOPInstanceUID == outs[0].SOPInstanceUID
    other = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(originals[0]), pseudonym=PSEUDONYM,
                                                       key=b"x" * 32).data))
    assert other.SOPInstanceUID != outs[0].SOPInstanceUID
    assert other.StudyInstanceUID != outs[0].StudyInstanceUID


def test_uid_form():
    uid = uid_for(KEY, "1.2.3.4")
    assert uid.startswith("2.25.") and len(uid) <= 44 and uid == uid_for(KEY, "1.2.3.4")
    assert pydicom.uid.UID(uid).is_valid


@pytest.mark.parametrize(("change", "reason"), [
    ({"BurnedInAnnotation": "YES"}, Reason.BURNED_IN),
    ({"RecognizableVisualFeatures": "YES"}, Reason.VISUAL_FEATURES),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, Reason.SECONDARY_CAPTURE),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.77.1.4.1"}, Reason.VIDEO_OR_PHOTO),
    ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.104.1"}, Reason.DOCUMENT),
    ({"Modality": "US"}, Reason.BURNED_IN_LIKELY),
])
def test_instances_that_may_show_identifying_pixels_are_excluded(change, reason):
    ds = _study(1)[0]
    for keyword, value in change.items():
        setattr(ds, keyword, value)
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == reason
    assert str(Reason(reason).label)  # a sentence to show


def test_ultrasound_that_says_no_burned_in_text_is_exported():
    ds = _study(1)[0]
    ds.Modality, ds.BurnedInAnnotation = "US", "NO"
    out = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
    assert out.PatientIdentityRemoved == "YES"


@pytest.mark.parametrize("modality", ["OT", None])
def test_ultrasound_is_known_by_its_sop_class_too(modality):
    """An ultrasound image whose Modality attribute says something else, or nothing (a converted
    file): still ultrasound, excluded unless it says Burned In Annotation = NO."""
    ds = _study(1)[0]
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    if modality is None:
        del ds.Modality
    else:
        ds.Modality = modality
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.BURNED_IN_LIKELY
    ds.BurnedInAnnotation = "NO"
    out = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
    assert out.PatientIdentityRemoved == "YES"


def test_objects_without_pixels_and_unreadable_bytes_are_excluded():
    ds = _study(1)[0]
    del ds.PixelData
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.NO_PIXELS
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(b"not a dicom file at all", pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.UNREADABLE


def test_names_and_dates_inside_kept_sequences_do_not_survive():
    """The table acts on top-level attributes; a person name or a date nested in a sequence it
    keeps is caught by the safety net."""
    ds = _study(1)[0]
    item = Dataset()
    item.PersonName = "Nested^Personella"
    item.ObservationDateTime = "19991231235959"
    item.Date = "19991230"
    ds.RealWorldValueMappingSequence = Sequence([item])
    data = deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data
    for secret in (b"Personella", b"19991231", b"19991230"):
        assert secret not in data


def test_the_table_applies_inside_sequences_at_any_depth():
    """PS3.15 E.1.1: an attribute of Table E.1-1 gets its action wherever it is, in the items of
    a sequence the table keeps too (K is "cleaned for sequences"): a record number, accession
    number, institution or address nested in one, at any depth, does not leave; what the table
    keeps there (a code) stays."""
    ds = _study(1)[0]
    inner = Dataset()
    inner.PatientID = "NESTED-MRN-4411"
    inner.InstitutionAddress = "12 Nestedway Lane"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
    item.OtherPatientIDs = "NESTED-OTHER-5512"
    item.AccessionNumber = "NESTED-ACC-6613"
    item.InstitutionName = "Nestedvale Infirmary"
    item.PatientAddress = "9 Quietnest Road"
    item.DeviceSerialNumber = "NESTED-SN-7714"
    item.AnatomicRegionModifierSequence = Sequence([inner])
    ds.AnatomicRegionSequence = Sequence([item])
    data = deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data
    for secret in (b"NESTED-MRN-4411", b"Nestedway", b"NESTED-OTHER-5512", b"NESTED-ACC-6613", b"Nestedvale",
                   b"Quietnest", b"NESTED-SN-7714"):
        assert secret not in data
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.AnatomicRegionSequence[0].CodeValue == "T-D3000"


# ----------------------------------------------------------------------------- verifying a claim

def test_identity_left_names_what_the_profile_would_still_remove():
    """``identity_left`` checks a file's claim of Patient Identity Removed = YES with the profile
    itself: empty on the profile's own output (no pseudonym), and naming (never showing) what is
    left otherwise: a name or ID at the top level, a name or record number nested in a sequence,
    a private tag; a pseudonym counts, as it cannot be told from a name."""
    clean = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(_study(1)[0]), pseudonym="", key=KEY).data))
    assert identity_left(clean) == []
    with_pseudonym = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(_study(1)[0]), pseudonym=PSEUDONYM,
                                                                key=KEY).data))
    assert identity_left(with_pseudonym) == ["PatientID", "PatientName"]

    claimed = _study(1)[0]
    claimed.PatientIdentityRemoved = "YES"
    left = identity_left(claimed)
    assert {"PatientName", "PatientID", "PatientBirthDate"} <= set(left)
    assert not any(str(claimed.PatientName) in path for path in left)  # names, not values
    assert str(claimed.PatientName)  # and the dataset checked is left as it was

    nested = Dataset()
    nested.PersonName = "Nested^Personella"
    nested.OtherPatientIDs = "NESTED-OTHER-5512"
    clean.RealWorldValueMappingSequence = Sequence([nested])
    clean.add_new(0x00110010, "LO", "LIGHTBOX TEST")
    clean.add_new(0x00111001, "LO", PRIVATE_MARKER)
    assert set(identity_left(clean)) == {"RealWorldValueMappingSequence[0].PersonName",
                                         "RealWorldValueMappingSequence[0].OtherPatientIDs",
                                         "(0011,0010)", "(0011,1001)"}
