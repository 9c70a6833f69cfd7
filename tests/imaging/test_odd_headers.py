"""Odd but possible header values (apps.imaging.dicom.parse): an ingest indexes them as far as the
index can hold them, or skips the file with a reason; it never fails on a database error (value
too long, integer out of range, NUL in text), and the study page shows what was indexed, in
English and in Spanish. Files are synthetic: a fictional patient, generated UIDs."""

from __future__ import annotations

import base64
import io
import struct
import warnings
import zipfile

import pytest
from django.test import Client
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from apps.imaging import dicom, follow, uploads
from apps.imaging.models import FileOutcome, IngestJob, Instance, JobState, PreparedEntry, Series, Study, Upload
from apps.imaging.services import ingest_job_run
from apps.organizations.models import Role
from bench.ingest.synthetic import ct_slice
from tests.factories import member
from tests.imaging.zips import zip_bytes

TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


def _dicom(*, transfer_syntax: bytes | None = None, **elements: tuple[str, object]) -> bytes:
    """A small synthetic CT slice (explicit VR little endian) with ``elements`` (keyword -> (VR, value))
    written as they come: a bytes or str value under a VR pydicom would convert (IS, US, FD...) is
    put in the file as it is, behind that VR, so that any bytes can be given."""
    ds = ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=4, columns=4, seed=b"\1" * 32)
    raw = {}
    for keyword, (vr, value) in elements.items():
        tag = Tag(tag_for_keyword(keyword))
        if isinstance(value, bytes | str) and vr not in TEXT_VRS:
            ds[tag] = DataElement(tag, "LO", f"RAW{len(raw):04d}")  # replaced below
            raw[tag] = (vr, value.encode() if isinstance(value, str) else value)
        else:
            ds[tag] = DataElement(tag, vr, value)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # an unknown charset, bytes it cannot decode: written as given
        warnings.simplefilter("ignore")
        ds.save_as(buf, enforce_file_format=False, implicit_vr=False, little_endian=True)
    data = buf.getvalue()
    for n, (tag, (vr, value)) in enumerate(raw.items()):
        element = struct.pack("<HH", tag.group, tag.elem)
        placeholder = element + b"LO" + struct.pack("<H", 8) + f"RAW{n:04d} ".encode()
        length = struct.pack("<I", len(value)) if vr.encode() in dicom.LONG_VRS else struct.pack("<H", len(value))
        if vr.encode() in dicom.LONG_VRS:
            length = b"\0\0" + length
        assert data.count(placeholder) == 1
        data = data.replace(placeholder, element + vr.encode() + length + value)
    if transfer_syntax is not None:  # pydicom refuses to write an unknown one: the meta is edited
        old = b"1.2.840.10008.1.2.1\0"
        head = struct.pack("<HH", 2, 0x10) + b"UI"
        at = data.index(head + struct.pack("<H", len(old)) + old)
        value = transfer_syntax + (b"\0" if len(transfer_syntax) % 2 else b"")
        data = data[:at] + head + struct.pack("<H", len(value)) + value + data[at + 8 + len(old):]
    return data


def _parse(**elements) -> dicom.DicomHeader:
    return dicom.parse(io.BytesIO(_dicom(**elements)))


# --- parsing: what the index gets --------------------------------------------------------------

@pytest.mark.parametrize(("elements", "field", "expected"), [
    # numbers pydicom cannot make an int of: it raised OverflowError out of parse (whole ingest failed)
    ({"InstanceNumber": ("IS", b"1e999 ")}, "instance_number", None),
    ({"SeriesNumber": ("IS", b"-1e999")}, "series_number", None),
    ({"Rows": ("FD", float("inf"))}, "rows", None),
    ({"Columns": ("DS", b"1e999 ")}, "columns", None),
    # numbers the integer columns cannot hold (PostgreSQL: integer out of range, or a check
    # constraint for the positive ones)
    ({"InstanceNumber": ("IS", b"99999999999 ")}, "instance_number", None),
    ({"InstanceNumber": ("IS", b"-2147483649 ")}, "instance_number", None),
    ({"SeriesNumber": ("IS", b"3000000000")}, "series_number", None),
    ({"NumberOfFrames": ("IS", b"99999999999 ")}, "frames", 1),
    ({"NumberOfFrames": ("IS", b"-3")}, "frames", 1),
    ({"Rows": ("SS", -1)}, "rows", None),
    ({"Columns": ("UL", 4294967295)}, "columns", None),
    # a length that is no multiple of the VR's size: pydicom's BytesLengthException left parse
    ({"Rows": ("UN", b"\1\2\3")}, "rows", None),
    ({"InstanceNumber": ("UV", b"\1\2\3")}, "instance_number", None),
    # ordinary odd values, unchanged
    ({"InstanceNumber": ("IS", b"-5")}, "instance_number", -5),
    ({"InstanceNumber": ("IS", b"abc ")}, "instance_number", None),
    ({"NumberOfFrames": ("IS", b"abc ")}, "frames", 1),
    ({"Rows": ("US", 0)}, "rows", 0),
])
def test_numbers_outside_the_index_are_unknown(elements, field, expected):
    assert getattr(_parse(**elements), field) == expected


@pytest.mark.parametrize(("keyword", "vr", "raw", "field", "expected"), [
    # NUL and other control characters (PostgreSQL refuses NUL in text and in JSON)
    ("PatientName", "PN", b"Doe\0^John", "patient_name", "Doe ^John"),
    ("PatientID", "LO", b"\0ID ", "patient_id", "ID"),
    ("AccessionNumber", "SH", b"A\0B ", "accession_number", "A B"),
    ("StudyDescription", "LO", b"a\x01\x1b[31mb\x7f", "study_description", "a  [31mb"),
    ("SeriesDescription", "LO", b"x\0y ", "series_description", "x y"),
    ("BodyPartExamined", "CS", b"\0\0CHEST ", "body_part_examined", "CHEST"),
    ("Modality", "CS", b"C\0T ", "modality", "C T"),
    ("SOPClassUID", "UI", b"1.2\0.3", "sop_class_uid", "1.2 .3"),  # not an identity: kept, as it is shown
    ("StudyDate", "DA", b"2020\0000101 ", "study_date", None),  # not a date (as before)
    # several values where one is expected: joined as DICOM writes them, cut to the column
    ("PatientName", "PN", b"A^B\\C^D", "patient_name", "A^B\\C^D"),
    ("Modality", "CS", b"CT\\MR\\PT\\US\\XA\\RF\\DX", "modality", "CT\\MR\\PT\\US\\XA\\R"),
])
def test_text_is_kept_without_control_characters(keyword, vr, raw, field, expected):
    assert getattr(_parse(**{keyword: (vr, raw)}), field) == expected


@pytest.mark.parametrize(("keyword", "tag"), [("PatientName", "(0010,0010)"), ("StudyDate", "(0008,0020)"),
                                            ("SOPInstanceUID", "(0008,0018)"), ("Modality", "(0008,0060)")])
def test_a_value_pydicom_cannot_convert_is_a_reason_not_an_exception(keyword, tag):
    """pydicom converts a value when it is first read, after dcmread: its exception (here a
    length that is no multiple of 8 bytes for a UV) left parse and failed the whole ingest. Then
    the reason was "malformed DICOM: BytesLengthException": it names the element now, by its tag."""
    with pytest.raises(dicom.DicomError) as refused:
        _parse(**{keyword: ("UV", b"\1\2\3")})
    assert refused.value.reason == f"damaged: the header element with tag {tag} cannot be read"
    assert refused.value.reason.parts == (("damaged: the header element with tag %(tag)s cannot be read",
                                           {"tag": tag}),)


def _with_charset(raw: bytes) -> bytes:
    """A synthetic slice whose Specific Character Set is ``raw`` (10 bytes), which pydicom would not write."""
    data = _dicom(SpecificCharacterSet=("CS", b"ISO_IR 100"), PatientName=("PN", b"M\xfcller^J"))
    assert len(raw) == 10 and data.count(b"ISO_IR 100") == 1
    return data.replace(b"ISO_IR 100", raw)


@pytest.mark.parametrize(("data", "tag"), [
    # pydicom found no Value Representation it knows (bytes flipped in the element's header)
    (lambda: _dicom(PatientName=("ZZ", b"Doe^John")), "(0010,0010)"),
    (lambda: _dicom(InstanceNumber=("ZZ", b"12")), "(0020,0013)"),
    # a character set that is a number, or holds a NUL: pydicom failed to look it up while it
    # read the data set (TypeError, ValueError "embedded null character")
    (lambda: _dicom(SpecificCharacterSet=("US", b"\x01\x00")), "(0008,0005)"),
    (lambda: _with_charset(b"IR\x00100    "), "(0008,0005)"),
])
def test_an_element_pydicom_cannot_read_is_named_by_its_tag(data, tag, caplog):
    """Not "malformed DICOM: NotImplementedError" (or TypeError, ValueError): an uploader cannot
    act on a Python type. The type goes to the log, for a developer; pydicom's text, which quotes
    the value, goes nowhere."""
    with caplog.at_level("DEBUG", logger="apps.imaging.dicom"), pytest.raises(dicom.DicomError) as refused:
        dicom.parse(io.BytesIO(data()))
    assert refused.value.reason == f"damaged: the header element with tag {tag} cannot be read"
    logged = [r.getMessage() for r in caplog.records if r.name == "apps.imaging.dicom"]
    assert len(logged) == 1 and tag in logged[0] and "Error at element" in logged[0]  # the type's name
    assert "Doe" not in logged[0] and "ISO" not in logged[0]


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
@pytest.mark.parametrize(("vr", "raw", "reason"), [
    ("UI", b"1.2\0003.4", "characters other than digits and dots"),  # a NUL inside is no padding; it was "1.2 3.4"
    ("UI", b"1.2 3.4", "characters other than digits and dots"),
    ("UI", b"1.2.3.4-5", "characters other than digits and dots"),
    ("UN", b"1.2.\xd9\xa3", "characters other than digits and dots"),  # not ASCII (UN: pydicom reads it as UI)
    ("UI", b"1.2.3.4\\1.2.3.5", "several values where one is expected"),  # which one is the identity?
    ("UT", b"1.2.3.4\\1.2.3.5", "several values where one is expected"),  # a VR pydicom does not split
    ("UI", b"1.2..3", "an empty component (a dot at either end, or two together)"),
    ("UI", b".1.2.3", "an empty component (a dot at either end, or two together)"),
    ("UI", b"1.2.3.", "an empty component (a dot at either end, or two together)"),
    ("OB", b"1.2.3 4", "characters other than digits and dots"),
])
def test_an_identifying_uid_that_cannot_serve_as_an_identity_is_refused(keyword, vr, raw, reason):
    """DICOM PS3.5 9.1: a UID is components of digits separated by dots. The index keys studies,
    series and instances on these three: they were checked for length only, so that a NUL
    (stored as a space), a space, several values or a dot too many went in as an identity. The
    reason names the attribute, never the value."""
    with pytest.raises(dicom.DicomError) as refused:
        _parse(**{keyword: (vr, raw)})
    assert refused.value.reason == f"invalid {keyword}: {reason}"
    assert refused.value.reason.parts == ((f"invalid %(keyword)s: {reason}", {"keyword": keyword}),)


@pytest.mark.parametrize(("vr", "raw", "expected"), [
    ("UI", b"1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2"),
    ("UI", b"1.2.3.4\0", "1.2.3.4"),  # padding: a trailing NUL (as DICOM pads a UID), or a space
    ("UI", b"1.2.3.4 ", "1.2.3.4"),
    ("UI", b"1.2.3.4\0\0 \0", "1.2.3.4"),
    ("UI", b"0.0", "0.0"),
    # leading zeros are against PS3.5 9.1, but archives hold them: refused, their studies could not be shared
    ("UI", b"1.2.840.0113654.2.70.1.097", "1.2.840.0113654.2.70.1.097"),
    # hashing anonymizers write hexadecimal (pydicom's bad_sequence.dcm, which the renditions sweep ingests)
    ("UI", b"05fa52f0e599f17b8186ff18fcdf2b5570a52206a75c4d03afebf5c475dc8758",
     "05fa52f0e599f17b8186ff18fcdf2b5570a52206a75c4d03afebf5c475dc8758"),
    ("UI", "1." + "2" * 62, "1." + "2" * 62),  # 64 characters
    # under a VR pydicom gives as bytes: the UID, not "b'1.2.3.4\\x00'" as the index had it
    ("OB", b"1.2.3.4\0", "1.2.3.4"),
])
def test_an_identifying_uid_as_archives_write_it_is_accepted(vr, raw, expected):
    for keyword, field in (("SOPInstanceUID", "sop_instance_uid"), ("StudyInstanceUID", "study_instance_uid"),
                           ("SeriesInstanceUID", "series_instance_uid")):
        assert getattr(_parse(**{keyword: (vr, raw)}), field) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    (b"1.2.840\0.10008.1.2.1", "1.2.840 .10008.1.2.1"),              # NUL: PostgreSQL refused the row
    (b"1.2.840.10008.1.2.1" + b".9" * 40, ("1.2.840.10008.1.2.1" + ".9" * 40)[:64]),  # value too long
])
def test_transfer_syntax_fits_its_column(raw, expected):
    assert _parse(transfer_syntax=raw).transfer_syntax_uid == expected


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_an_identifying_uid_longer_than_dicom_allows_is_refused(keyword):
    """Cut to 64 characters, two studies (or series, instances) whose UIDs differ only after the
    64th would have become one."""
    with pytest.raises(dicom.DicomError) as refused:
        _parse(**{keyword: ("UI", "1." + "2" * 70)})
    assert refused.value.reason == f"invalid {keyword}: longer than 64 characters"
    assert refused.value.reason.parts == (("invalid %(keyword)s: longer than %(max)s characters",
                                           {"keyword": keyword, "max": 64}),)


# --- ingest: one upload with all of them --------------------------------------------------------

ODD = {
    "instance_inf.dcm": {"InstanceNumber": ("IS", b"1e999 ")},
    "instance_huge.dcm": {"InstanceNumber": ("IS", b"99999999999 ")},
    "instance_fraction.dcm": {"InstanceNumber": ("IS", b"1.5 ")},
    "instance_abc.dcm": {"InstanceNumber": ("IS", b"abc ")},
    "series_huge.dcm": {"SeriesNumber": ("IS", b"3000000000")},
    "frames_huge.dcm": {"NumberOfFrames": ("IS", b"99999999999 ")},
    "frames_negative.dcm": {"NumberOfFrames": ("IS", b"-3")},
    "rows_negative.dcm": {"Rows": ("SS", -1)},
    "rows_zero.dcm": {"Rows": ("US", 0)},
    "columns_huge.dcm": {"Columns": ("UL", 4294967295)},
    "name_nul.dcm": {"PatientName": ("PN", b"Doe\0^John")},
    "id_nul.dcm": {"PatientID": ("LO", b"\0ID "), "AccessionNumber": ("SH", b"A\0B ")},
    "descriptions_nul.dcm": {"StudyDescription": ("LO", b"x\0y "), "SeriesDescription": ("LO", b"x\0y "),
                             "BodyPartExamined": ("CS", b"\0\0CHEST "), "Modality": ("CS", b"C\0T ")},
    "uids_nul.dcm": {"SOPInstanceUID": ("UI", b"1.2\0003.4"), "SeriesInstanceUID": ("UI", b"1.2\0003.6")},
    "study_uid_nul.dcm": {"StudyInstanceUID": ("UI", b"1.2\0003.5")},
    "sop_class_nul.dcm": {"SOPClassUID": ("UI", b"1.2\0.3")},
    "uid_multi.dcm": {"SeriesInstanceUID": ("UI", b"1.2.3.4\\1.2.3.5")},
    "uid_leading_zero.dcm": {"SOPInstanceUID": ("UI", b"1.2.840.0113654.2.70.1.097")},
    "transfer_syntax_nul.dcm": {"transfer_syntax": b"1.2.840\0.10008.1.2.1"},
    "transfer_syntax_long.dcm": {"transfer_syntax": b"1.2.840.10008.1.2.1" + b".9" * 40},
    "uid_long.dcm": {"SOPInstanceUID": ("UI", "1." + "2" * 100)},
    "long_text.dcm": {"PatientID": ("LO", "X" * 300), "PatientName": ("PN", "Y" * 300),
                      "StudyDescription": ("LO", "Z" * 300), "AccessionNumber": ("SH", "A" * 100)},
    "dates.dcm": {"StudyDate": ("DA", b"20231345"), "PatientBirthDate": ("DA", b"abc ")},
    "dates_far.dcm": {"StudyDate": ("DA", b"00010101"), "PatientBirthDate": ("DA", b"99991231")},
    "charset_unknown.dcm": {"SpecificCharacterSet": ("CS", b"ISO_IR 999"), "PatientName": ("PN", b"M\xfcller\xff")},
    "charset_latin1.dcm": {"SpecificCharacterSet": ("CS", b"ISO_IR 100"), "PatientName": ("PN", b"M\xfcller^J\xf6rg")},
    "charset_utf8_bad.dcm": {"SpecificCharacterSet": ("CS", b"ISO_IR 192"),
                             "PatientName": ("PN", b"M\xc3ller\xed\xa0")},
    "charset_jis.dcm": {"SpecificCharacterSet": ("CS", b"\\ISO 2022 IR 87"),
                        "PatientName": ("PN", b"\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B")},
    "charset_number.dcm": {"SpecificCharacterSet": ("US", "ISO_IR 100")},
    "name_wrong_length.dcm": {"PatientName": ("UV", b"\1\2\3")},
    "rows_wrong_length.dcm": {"Rows": ("UN", b"\1\2\3")},
    "multi.dcm": {"PatientName": ("PN", b"A^B\\C^D"), "Modality": ("CS", b"CT\\MR\\PT\\US\\XA\\RF\\DX"),
                  "InstanceNumber": ("IS", b"1\\2 ")},
    "empty.dcm": {"Modality": ("CS", b""), "SOPClassUID": ("UI", b""), "PatientName": ("PN", b""),
                  "StudyDate": ("DA", b""), "Rows": ("US", b""), "SeriesNumber": ("IS", b"")},
}


def _upload(client: Client, data: bytes, filename: str) -> IngestJob:
    meta = "filename " + base64.b64encode(filename.encode()).decode()
    r = client.generic("POST", "/api/v1/uploads/", data, content_type="application/offset+octet-stream",
                       HTTP_UPLOAD_LENGTH=str(len(data)), HTTP_UPLOAD_METADATA=meta, **TUS)
    assert r.status_code == 201, r.content
    return IngestJob.objects.get(upload=Upload.objects.get(public_id=r["Location"].rstrip("/").rsplit("/", 1)[1]))


def _no_control_characters(model) -> None:
    texts = [f.attname for f in model._meta.concrete_fields if f.get_internal_type() == "CharField"]
    for row in model.objects.values(*texts):
        for name, value in row.items():
            assert dicom.CONTROL.search(value) is None, (model.__name__, name)


@pytest.mark.django_db
def test_odd_files_in_one_upload_are_ingested_or_skipped_and_shown(org_a, clinician_a, client_as, small_ct,
                                                                     django_capture_on_commit_callbacks):
    """Before: the first of these files the index could not hold failed the whole upload
    (DataError on PostgreSQL: integer out of range, text with NUL, value too long; OverflowError
    anywhere), the good files included."""
    good = {f"good/{p.name}": p.read_bytes() for p in sorted(small_ct.iterdir())}
    odd = {f"odd/{name}": _dicom(**elements) for name, elements in ODD.items()}
    uploader = Client()
    uploader.force_login(member(org_a, Role.RADIOLOGIST))
    with django_capture_on_commit_callbacks(execute=True):  # renditions run too
        job = _upload(uploader, zip_bytes({**good, **odd}, zipfile.ZIP_STORED), "odd.zip")
    job.refresh_from_db()
    assert job.state == JobState.DONE_WITH_WARNINGS
    lines = {f.path: f for f in job.files.all()}
    assert set(lines) == set(good) | set(odd)
    for path in good:
        assert lines[path].outcome == FileOutcome.INGESTED, path
    skipped = {p: f.reason for p, f in lines.items() if f.outcome == FileOutcome.SKIPPED}
    assert skipped == {"odd/uid_long.dcm": "invalid SOPInstanceUID: longer than 64 characters",
                       "odd/uids_nul.dcm": "invalid SOPInstanceUID: characters other than digits and dots",
                       "odd/study_uid_nul.dcm": "invalid StudyInstanceUID: characters other than digits and dots",
                       "odd/uid_multi.dcm": "invalid SeriesInstanceUID: several values where one is expected",
                       "odd/charset_number.dcm": "damaged: the header element with tag (0008,0005) cannot be read",
                       "odd/name_wrong_length.dcm": "damaged: the header element with tag (0010,0010) cannot be read"}
    assert Instance.objects.count() == len(good) + len(odd) - len(skipped)
    for model in (Study, Series, Instance):
        _no_control_characters(model)
    inst = {line.path: line.instance for line in lines.values() if line.instance is not None}
    assert inst["odd/instance_huge.dcm"].instance_number is None
    assert inst["odd/frames_huge.dcm"].frames == 1
    assert inst["odd/columns_huge.dcm"].columns is None
    assert inst["odd/rows_wrong_length.dcm"].rows is None
    assert len(inst["odd/transfer_syntax_long.dcm"].transfer_syntax_uid) == 64
    assert inst["odd/sop_class_nul.dcm"].sop_class_uid == "1.2 .3"
    assert inst["odd/uid_leading_zero.dcm"].sop_instance_uid == "1.2.840.0113654.2.70.1.097"
    studies = {path: line.study for path, line in lines.items() if line.study is not None}
    assert studies["odd/name_nul.dcm"].patient_name == "Doe ^John"
    assert len(studies["odd/long_text.dcm"].patient_id) == 64
    assert studies["odd/charset_latin1.dcm"].patient_name == "Müller^Jörg"
    assert studies["odd/charset_jis.dcm"].patient_name == "山田^太郎"
    assert studies["odd/dates.dcm"].study_date is None
    # the study pages, as a member of the organization, in English and in Spanish
    viewer = client_as(clinician_a)
    for study in Study.objects.all():
        for language in ("en", "es"):
            r = viewer.get(study.get_absolute_url(), HTTP_ACCEPT_LANGUAGE=language)
            assert r.status_code == 200, (study.pk, language)


@pytest.mark.django_db
def test_the_follower_stores_odd_headers_and_the_job_uses_them(org_a, monkeypatch):
    """The follower keeps each parsed header as JSON: before, a NUL in a patient name or an
    instance number past the column failed its commit (PostgreSQL refuses \\u0000 in jsonb), or the
    job's batch when it used the header."""
    from apps.imaging import services

    files = {"a.dcm": _dicom(PatientName=("PN", b"Doe\0^John"), InstanceNumber=("IS", b"99999999999 ")),
             "b.dcm": _dicom(StudyDescription=("LO", b"x\0y "), NumberOfFrames=("IS", b"-3"))}
    data = zip_bytes(files, zipfile.ZIP_STORED)
    upload = uploads.upload_create(organization=org_a, user=member(org_a, Role.RADIOLOGIST), length=len(data),
                                   filename="study.zip")
    writer = uploads.upload_writer(upload)
    writer.write(data[:-1])
    writer.close()
    Upload.objects.filter(pk=upload.pk).update(offset=len(data) - 1)
    assert follow.upload_follow(upload_id=upload.pk) == 2
    headers = {p.name: follow.header_from_json(p.header) for p in PreparedEntry.objects.all()}
    assert headers["a.dcm"].patient_name == "Doe ^John" and headers["a.dcm"].instance_number is None
    assert headers["b.dcm"].study_description == "x y" and headers["b.dcm"].frames == 1
    assert headers == {name: dicom.parse(io.BytesIO(content)) for name, content in files.items()}

    writer = uploads.upload_writer(Upload.objects.get(pk=upload.pk))
    writer.write(data[-1:])
    writer.close()
    Upload.objects.filter(pk=upload.pk).update(offset=len(data))
    job = uploads.upload_complete(upload=Upload.objects.get(pk=upload.pk))
    parsed = []
    monkeypatch.setattr(services, "_prepare", lambda entry, fh: parsed.append(entry.path))
    job = ingest_job_run(job_id=job.pk)
    assert job.state == JobState.DONE and job.files_ingested == 2 and job.files_prepared == 2 and parsed == []
