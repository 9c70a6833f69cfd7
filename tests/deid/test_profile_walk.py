"""The PS3.15 Annex E basic profile checked element by element (apps.deid.profile).

- Every attribute of Table E.1-1 (the edition the profile applies, read from the same table)
  gets its action, at the top level and nested two sequences deep, and none of the values it
  came with leaves.
- Every file of pydicom's test data (and its character set files) that parses as an instance,
  with the exclusion policy set aside (it has its own tests in test_profile.py) so that the
  header profile runs on all of them: every element of the output, at any depth and in the file
  meta, is walked; no private tag, no Table E.1-1 attribute with a value it should not have, no
  person name but the pseudonym, no date but the dummy, no UID but a mapped or a registered one;
  and none of the original's UIDs, names or patient IDs is in the output's bytes.
- Odd and damaged input: a UID attribute written with another VR, elements the data dictionary
  does not name, a kept attribute holding the patient's ID or a UID, and files damaged at random
  (seeded): each is either refused with a reason or leaves without anything of the original.
"""

from __future__ import annotations

import io
import logging
import random
import warnings
from pathlib import Path

import pydicom
import pytest
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.data import get_charset_files, get_testdata_file, get_testdata_files
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import UID_dictionary, generate_uid

from apps.deid import profile
from apps.deid.profile import TABLE, Excluded, Reason, deidentify_file, uid_for
from bench.ingest.synthetic import ct_slice

KEY = b"w" * 32
PSEUDONYM = "CASE-WALK-0001"
#: what the profile writes in place of a value (dicom-anonymizer's dummies, and empty)
DUMMIES = {"", "ANONYMIZED", "0", "0.0", "00010101", "000000.00", "00010101010101.000000+0000", "000Y",
           "http://anonymized.invalid", "b''", "b'Anonymized'", "None"}
#: replaced by the pseudonym the exporter chose (top level only)
PSEUDONYMIZED = (0x00100010, 0x00100020)
#: the table's categories whose attributes keep no value of their own (U: mapped; X/Z/U*: the
#: references stay, mapped)
EMPTIED = ("D_TAGS", "Z_TAGS", "Z_D_TAGS", "X_Z_TAGS", "X_D_TAGS", "X_Z_D_TAGS")


def _table() -> dict[Tag, str]:
    """Table E.1-1 as the profile applies it: tag -> category (repeating groups left out: they
    are checked by their groups below)."""
    actions: dict[Tag, str] = {}
    for category, tags in dicom_anonymization_database_selector(TABLE).items():
        if category == "ALL_TAGS":
            continue
        for tag in tags:
            if len(tag) == 2:
                actions[Tag(*tag)] = category
    return actions


ACTIONS = _table()


def _bytes(ds: Dataset, implicit: bool = False) -> bytes:
    buffer = io.BytesIO()
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _slice() -> Dataset:
    return ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=4, columns=4,
                    seed=bytes(128))


def _read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


# ----------------------------------------------------------------------------- every attribute of the table

_VALUES = {"AE": "AEMARK{}", "AS": "077Y", "CS": "CSMARK{}", "DA": "19710203", "DS": "7{}.5", "DT": "19710203112233",
           "IS": "77{}", "LO": "LOMARK{}", "LT": "LTMARK{}", "PN": "Pnmark^Given{}", "SH": "SHMK{}", "ST": "STMARK{}",
           "TM": "112233", "UC": "UCMARK{}", "UI": "1.2.826.0.1.3680043.99.{}", "UR": "http://urmark{}.example",
           "UT": "UTMARK{}"}
_BINARY = {"OB", "UN"}
_NUMBERS = {"US": 4321, "SS": 4321, "UL": 4321, "SL": 4321, "FL": 4321.0, "FD": 4321.0}


def _fill(ds: Dataset, offset: int) -> dict[Tag, tuple[str, object]]:
    """Every attribute of the table (but the file meta, command and encapsulated document ones,
    which cannot be in an image's dataset) with a distinctive value; sequences get an item
    holding a patient ID and an instance reference."""
    written: dict[Tag, tuple[str, object]] = {}
    for n, tag in enumerate(ACTIONS):
        if tag.group in (0x0000, 0x0002) or tag == 0x00420011:
            continue
        i = offset + n
        vr = dictionary_VR(tag).split(" or ")[0] if dictionary_has_tag(tag) else "UN"
        if vr == "SQ":
            item = Dataset()
            item.PatientID = f"SQMARK{i}"
            item.ReferencedSOPInstanceUID = f"1.2.826.0.1.3680043.98.{i}"
            ds.add_new(tag, "SQ", Sequence([item]))
            written[tag] = ("SQ", (f"SQMARK{i}", f"1.2.826.0.1.3680043.98.{i}"))
        elif vr in _VALUES:
            value = _VALUES[vr].format(i)
            ds.add_new(tag, vr, value)
            written[tag] = (vr, value)
        elif vr in _BINARY:
            value = f"BINMARK{i:05d}".encode()
            ds.add_new(tag, vr, value)
            written[tag] = (vr, value)
        elif vr in _NUMBERS:
            ds.add_new(tag, vr, _NUMBERS[vr])
            written[tag] = (vr, _NUMBERS[vr])
    return written


def _check_actions(where: str, written: dict, out: Dataset) -> list[str]:
    wrong = []
    for tag, (vr, value) in written.items():
        category = ACTIONS[tag]
        element = out.get(tag)
        name = f"{where}{tag}"
        if vr == "SQ":
            for item in element.value if element is not None else ():
                if str(item.get("PatientID", "")).startswith("SQMARK"):
                    wrong.append(f"{name} {category}: an item kept its patient ID")
                reference = item.get((0x0008, 0x1155))
                if reference is not None and str(reference.value) == value[1]:
                    wrong.append(f"{name} {category}: an item kept its original reference")
            continue
        if element is None:
            if category == "U_TAGS":
                wrong.append(f"{name} U: removed, not replaced")
            continue
        if category == "X_TAGS" and vr != "DA":  # dicom-anonymizer gives an X date the dummy date
            wrong.append(f"{name} X: present")
        elif category == "U_TAGS" or vr == "UI":  # a UID under D (Annotation Group UID) is mapped too
            if element.value != uid_for(KEY, value) and not (category != "U_TAGS" and element.value == ""):
                wrong.append(f"{name} {category}: UID not mapped under the export's key")
        elif vr in _NUMBERS:
            if category != "X_TAGS" and element.value not in (0, 0.0, None, ""):
                wrong.append(f"{name} {category}: kept its value")
        elif str(element.value) not in DUMMIES and element.value != b"" and not (
                where == "" and tag in PSEUDONYMIZED and element.value == PSEUDONYM):
            wrong.append(f"{name} {category}: {vr} value not emptied or replaced")
    return wrong


def test_every_attribute_of_the_table_gets_its_action_at_any_depth():
    """Each attribute of Table E.1-1 with a distinctive value, at the top level and in an item of
    a sequence nested in an item of a sequence the table keeps: X removed, U mapped under the
    export's key, D, Z and their combinations emptied or replaced by a dummy, sequences'
    identifying content gone; none of the values is anywhere in the output's bytes. The file
    meta is rebuilt (Media Storage SOP Instance UID = the new SOP Instance UID), nothing of the
    sending system's in it."""
    ds = _slice()
    for tag in list(ds.keys()):  # the slice's own values of table attributes: the table's values win
        if Tag(tag) in ACTIONS and tag not in (0x00080018, 0x0020000D, 0x0020000E):
            del ds[tag]
    top = _fill(ds, 0)
    inner = Dataset()
    nested = _fill(inner, 10000)
    outer = Dataset()
    outer.CodeValue, outer.CodingSchemeDesignator, outer.CodeMeaning = "T-D3000", "SRT", "Chest"
    outer.AnatomicRegionModifierSequence = Sequence([inner])
    ds.AnatomicRegionSequence = Sequence([outer])
    ds.file_meta.SourceApplicationEntityTitle = "AEMARKSOURCE"
    ds.file_meta.SendingApplicationEntityTitle = "AEMARKSENDING"
    ds.file_meta.ImplementationVersionName = "VNMARKIMPL"
    assert len(top) > 500 and len(nested) == len(top)  # the whole table, not a sample
    source = _bytes(ds)

    data = deidentify_file(source, pseudonym=PSEUDONYM, key=KEY).data
    out = _read(data)
    wrong = _check_actions("", top, out)
    wrong += _check_actions("AnatomicRegionSequence[0].AnatomicRegionModifierSequence[0].", nested,
                            out.AnatomicRegionSequence[0].AnatomicRegionModifierSequence[0])
    assert wrong == []
    for marker in (b"MARK", b"Pnmark", b"SHMK", b"1.2.826.0.1.3680043.98.", b"1.2.826.0.1.3680043.99.",
                   b"19710203", b"112233"):
        assert marker not in data
    assert out.AnatomicRegionSequence[0].CodeValue == "T-D3000"  # what the table keeps stays
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID == uid_for(KEY, ds.SOPInstanceUID)
    assert "SourceApplicationEntityTitle" not in out.file_meta
    assert "SendingApplicationEntityTitle" not in out.file_meta
    assert out.file_meta.ImplementationVersionName == profile.IMPLEMENTATION_VERSION


# ----------------------------------------------------------------------------- every pydicom test file, walked

def _instances() -> list[str]:
    """pydicom's test files (its own and pydicom-data's) and character set files that parse as
    instances."""
    paths = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in sorted(set(get_testdata_files("*")) | set(get_charset_files("*.dcm"))):
            try:
                ds = pydicom.dcmread(path)
                ds.SOPInstanceUID, ds.SOPClassUID  # noqa: B018
            except Exception:  # not an instance (a dump, a DICOMDIR, a JSON file)
                continue
            paths.append(path)
    return paths


INSTANCES = _instances()


def test_the_walk_covers_pydicom_test_data():
    assert len(INSTANCES) > 140
    assert any("chrH31" in p for p in INSTANCES)  # text in ISO 2022 (Japanese) character sets


def _identity(path: str) -> tuple[set[str], set[bytes]]:
    """The original's UIDs (not registered, not the writer's implementation class) and its
    patient's name and ID (whole and in components, six characters or more, as written)."""
    raw = pydicom.dcmread(path)
    uids: set[str] = set()
    names: set[bytes] = set()

    def visit(_ds, element):
        if element.VR == "UI" and element.value and element.tag not in (0x00020012, 0x00020010):
            for v in element.value if element.VM > 1 else [element.value]:
                if v and str(v) not in UID_dictionary and len(str(v)) >= 10:
                    uids.add(str(v))

    for keyword in ("PatientName", "PatientID", "OtherPatientIDs"):  # before walk() converts them
        element = raw.get_item(keyword) if keyword in raw else None
        value = element.value if element is not None else None
        if isinstance(value, bytes):  # as written, in the file's character set
            for part in [value, *value.replace(b"=", b"^").split(b"^")]:
                part = part.strip(b" \0")
                if len(part) >= 6 and part.decode("latin-1") not in DUMMIES and part.strip(b"0"):
                    names.add(part)
    raw.walk(visit)
    raw.file_meta.walk(visit)
    return uids, names


def _walk(out: Dataset, uids: set[str]) -> list[str]:
    """What the output holds that the profile should not have left, by path (never values)."""
    wrong: list[str] = []

    def walk(ds: Dataset, where: str, emptied: bool) -> None:
        for element in ds:
            name = f"{where}{element.keyword or element.tag}"
            category = ACTIONS.get(element.tag)
            if element.tag.is_private:
                wrong.append(f"{name}: private")
            elif element.tag.group & 0xFF00 in (0x5000, 0x6000):
                wrong.append(f"{name}: a curve or an overlay plane")
            elif element.VR == "UI":
                for v in element.value if element.VM > 1 else [element.value]:
                    v = str(v or "")
                    if v in uids:
                        wrong.append(f"{name}: an original UID")
                    elif v and not v.startswith("2.25.") and v not in UID_dictionary and element.tag != 0x00020012:
                        wrong.append(f"{name}: a UID neither mapped nor registered")
            elif element.VR == "PN":
                if str(element.value or "") and not (where == "" and element.keyword == "PatientName"):
                    wrong.append(f"{name}: a person's name")
            elif element.VR in ("DA", "DT", "TM"):
                if str(element.value or "") not in DUMMIES:
                    wrong.append(f"{name}: a date or time")
            elif category == "X_TAGS":
                wrong.append(f"{name}: X, present")
            elif element.VR != "SQ" and (emptied or category in EMPTIED):
                values = element.value if element.VM > 1 and not isinstance(element.value, str | bytes) else [
                    element.value]
                if any(str(v) not in DUMMIES for v in values) and not (
                        where == "" and element.tag in PSEUDONYMIZED and element.value == PSEUDONYM):
                    wrong.append(f"{name}: {category or 'in an emptied sequence'}, not emptied or replaced")
            if element.VR == "SQ":
                for i, item in enumerate(element.value or ()):
                    walk(item, f"{name}[{i}].", emptied or category in EMPTIED)

    walk(out, "", False)
    walk(out.file_meta, "(meta).", False)
    return wrong


@pytest.mark.parametrize("path", INSTANCES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_every_element_of_every_pydicom_file_is_clean(path, monkeypatch):
    """The header profile on each of pydicom's test files (the exclusion policy set aside, so that
    ultrasound, secondary captures and objects without pixels are walked too): every element of
    the output, at any depth and in the file meta, as the profile should leave it, and none of
    the original's UIDs, names and patient IDs in its bytes."""
    monkeypatch.setattr(profile, "exclusion_reason", lambda ds: None)
    uids, names = _identity(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = deidentify_file(Path(path).read_bytes(), pseudonym=PSEUDONYM, key=KEY).data
        out = _read(data)
    assert _walk(out, uids) == []
    assert out.PatientName == PSEUDONYM and out.PatientID == PSEUDONYM
    assert out.PatientIdentityRemoved == "YES"
    [code] = out.DeidentificationMethodCodeSequence
    assert (code.CodeValue, code.CodingSchemeDesignator) == profile.PROFILE_CODE[:2]
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert not [u for u in uids if u.encode() in data]
    assert not [n for n in names if n in data]


# ----------------------------------------------------------------------------- odd and damaged input

@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_a_uid_attribute_written_with_another_vr_is_mapped(implicit):
    """A writer that encodes Study Instance UID as LO or Frame of Reference UID as SH: still UIDs,
    mapped like every other (they left as they came: only elements encoded as UI were mapped)."""
    ds = _slice()
    study, frame = ds.StudyInstanceUID, generate_uid()
    ds[0x0020000D] = DataElement(0x0020000D, "LO", study)
    ds[0x00200052] = DataElement(0x00200052, "SH", frame)
    ref = Dataset()
    ref[0x00081155] = DataElement(0x00081155, "LO", study)
    ds.ReferencedStudySequence = Sequence([ref])
    source = _bytes(ds)
    if implicit:  # an implicit VR file has no VR to be wrong: read as UI (the control case)
        source = _bytes(_read(source), implicit=True)
    data = deidentify_file(source, pseudonym=PSEUDONYM, key=KEY).data
    out = _read(data)
    assert out.StudyInstanceUID == uid_for(KEY, study) and out["StudyInstanceUID"].VR == "UI"
    assert out.FrameOfReferenceUID == uid_for(KEY, frame)
    assert study.encode() not in data and frame.encode() not in data


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_elements_the_dictionary_does_not_name_are_removed(implicit):
    """A public element no data dictionary names (a damaged file's corrupted tag: the patient's
    name read under (1710,0010)) gets no action from the table: it is removed, at any depth, as
    private ones are."""
    ds = _slice()
    ds.add_new(0x17100010, "LO", "Unknownelement^Quillon")
    item = Dataset()
    item.add_new(0x0C100020, "LO", "UNKNOWN-NESTED-4471")
    item.CodeValue, item.CodingSchemeDesignator = "T-D3000", "SRT"
    ds.AnatomicRegionSequence = Sequence([item])
    data = deidentify_file(_bytes(ds, implicit=implicit), pseudonym=PSEUDONYM, key=KEY).data
    assert b"Quillon" not in data and b"UNKNOWN-NESTED-4471" not in data
    out = _read(data)
    assert 0x17100010 not in out and 0x0C100020 not in out.AnatomicRegionSequence[0]
    assert out.AnatomicRegionSequence[0].CodeValue == "T-D3000"


def test_an_overlay_plane_goes_whole():
    """The table removes Overlay Data and Overlay Comments (X); what is left of the plane (rows,
    columns, origin, description, label) describes an overlay no longer there (the module without
    its Type 1 data, which viewers reject) and its text is not processed: the group goes whole."""
    path = get_testdata_file("MR-SIEMENS-DICOM-WithOverlays.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        original = pydicom.dcmread(path)
        assert 0x60003000 in original and 0x60000010 in original
        out = _read(deidentify_file(Path(path).read_bytes(), pseudonym=PSEUDONYM, key=KEY).data)
    assert not [e.tag for e in out if e.tag.group & 0xFF00 == 0x6000]


def test_where_the_original_can_be_fetched_from_is_removed():
    """Retrieve URL and URI, storage and file access URLs (not in Table E.1-1), at the top level and
    in an item of a kept sequence: a DICOMweb URL names the organization's server and holds the
    original Study Instance UID. Removed, and the file is exported (before, it left with them)."""
    ds = _slice()
    url = f"https://pacs.quillfeather.example/dicomweb/studies/{ds.StudyInstanceUID}"
    ds.RetrieveURL = url
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
    item.RetrieveURI = url + "/series"
    item.FileAccessURI = "file://quillfeather-nas/scans/12.dcm"
    ds.AnatomicRegionSequence = Sequence([item])
    data = deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data
    assert b"quillfeather" not in data
    out = _read(data)
    assert "RetrieveURL" not in out and "RetrieveURI" not in out.AnatomicRegionSequence[0]
    assert out.AnatomicRegionSequence[0].CodeValue == "T-D3000"


@pytest.mark.parametrize("where", ["patient_id", "digits", "accession", "uid", "misread"])
def test_a_file_still_holding_what_identified_it_is_refused(where):
    """After the profile ran, the output is checked against the original: one of its UIDs, its
    patient's name or ID or its accession number in any value the table does not act on (a writer's habit, a damaged
    file's value read into another attribute), or a text holding control characters (a
    corrupted length swallowed the next attributes, headers and values, into one value): the
    file is refused with a reason, never exported."""
    ds = _slice()
    ds.PatientID = "MRN-CHECK-31337"
    # (a keep-list text naming the patient is the safety net's: tests/deid/test_free_text.py; here
    # values no text rule acts on: a code string, a number)
    if where == "patient_id":
        ds.ScanOptions = "MRN-CHECK-31337"
    elif where == "digits":
        ds.PatientID = "48291377"
        ds.add_new(0x00181150, "IS", "48291377")  # Exposure Time
    elif where == "accession":
        ds.AccessionNumber = "ACC-CHECK-5531"
        ds.ProtocolName = "Chest ACC-CHECK-5531"
        ds.ScanOptions = "ACC-CHECK-5531"
    elif where == "uid":
        ds.FlowCompensationDirection = ds.StudyInstanceUID
    else:
        ds.ScanOptions = "HELICAL\0\x18\x91\x99CS\0\x02NO"
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.FAILED


def _jpeg(comment: bytes) -> Dataset:
    """A slice whose pixel data is an encapsulated JPEG baseline frame carrying ``comment`` in a
    COM segment (the pixels are never decoded: the profile does not change them)."""
    ds = _slice()
    frame = (b"\xff\xd8\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
             + bytes(range(256)) * 4 + b"\xff\xd9")
    ds.PixelData = pydicom.encaps.encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    ds.PatientName, ds.PatientID = "Codestream^Quillon", "MRN-JPEG-7781"
    return ds


@pytest.mark.parametrize("comment", [b"Patient: Codestream^Quillon", b"ID MRN-JPEG-7781"])
def test_a_name_in_a_compressed_frame_refuses_the_file(comment):
    """The patient's name or ID in a JPEG comment of the pixel data (written by a device or a
    converter; the profile cleans headers, never pixels): refused, never exported. Another
    comment is no reason to refuse."""
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(_jpeg(comment)), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.FAILED
    out = _read(deidentify_file(_bytes(_jpeg(b"Made by a converter 2.1")), pseudonym=PSEUDONYM, key=KEY).data)
    assert out.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit


def test_the_check_does_not_refuse_a_clean_file():
    """Text with line breaks and tabs is text; a patient ID of digits only is looked for as a
    whole number in text, not inside a replaced UID (whose 39 digits hold any 6 digits in one
    file of a few thousand) nor inside a longer number."""
    ds = _slice()
    ds.ManufacturerModelName = "Scanner 64"
    ds.ImageComments = "line one\r\nline two\tend"  # X: removed, and breaks are text anyway
    replaced = uid_for(KEY, ds.StudyInstanceUID)
    ds.PatientID = replaced[-9:-2]  # digits the replaced Study Instance UID holds
    ds.SliceLocation = f"{ds.PatientID}1.5"
    out = _read(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data)
    assert out.ManufacturerModelName == "Scanner 64"
    assert out.StudyInstanceUID == replaced and str(ds.PatientID) in replaced


def _damaged(raw: bytes, rnd: random.Random) -> list[bytes]:
    """Truncations anywhere after the preamble, and one to four bytes changed in the header."""
    cases = [raw[:n] for n in sorted(rnd.sample(range(132, len(raw)), 40))]
    for _ in range(160):
        data = bytearray(raw)
        for _ in range(rnd.randint(1, 4)):
            data[rnd.randrange(132, min(len(data), 3000))] = rnd.randrange(256)
        cases.append(bytes(data))
    return cases


@pytest.mark.parametrize("name", ["rtdose.dcm", "MR_small_implicit.dcm", "emri_small_big_endian.dcm",
                                  "CT_small.dcm"])
def test_damaged_files_are_refused_or_leave_nothing_of_the_original(name):
    """Files damaged at random (seeded, so the same cases every run): each is refused with a
    reason, or leaves without any of the original's UIDs, its patient's name or ID. Before, a
    corrupted tag carried the patient's name or a UID out under an element no action applies to,
    and a corrupted length swallowed a UID into a kept attribute."""
    path = get_testdata_file(name)
    uids, names = _identity(path)
    assert uids and (names or name != "rtdose.dcm")
    exported = refused = 0
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for data in _damaged(Path(path).read_bytes(), random.Random(1)):
                try:
                    out = deidentify_file(data, pseudonym=PSEUDONYM, key=KEY).data
                except Excluded as exc:
                    assert exc.reason in Reason.values
                    refused += 1
                    continue
                exported += 1
                assert not [u for u in uids if u.encode() in out]
                assert not [n for n in names if n in out]
    finally:
        logging.disable(logging.NOTSET)
    assert exported and refused  # both paths taken


def test_file_meta_of_a_file_without_one_is_made():
    """A dataset stored without a file meta group (read with force): the output has one, with the
    new SOP Instance UID."""
    ds = _slice()
    buffer = io.BytesIO()
    ds.file_meta = FileMetaDataset()
    pydicom.dcmwrite(buffer, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    out = _read(deidentify_file(buffer.getvalue(), pseudonym=PSEUDONYM, key=KEY).data)
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID == uid_for(KEY, ds.SOPInstanceUID)
