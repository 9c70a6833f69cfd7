"""The profile's safety net for free text, and the images it leaves out for what their pixels may
show (apps.deid.profile).

- Free text (LO, LT, ST, UT, UC, SH, PN) the table does not list leaves only if it is on the
  reviewed keep-list (codes in items, the make and model, kernel and sequence names, units and
  window presets): a comment on a procedure step, a document title, a dose comment, a segment's
  label, a birth date in an alternative calendar do not, at the top level or nested in a sequence
  the table keeps. What a module requires stays present, empty or with the table's dummy.
- ``identity_left`` (which decides whether a file saying Patient Identity Removed = YES counts as
  de-identified) reports such text; the check before a file leaves refuses it.
- URLs and AE titles (UR, AE) are free text too; in items, only a standard coding scheme's
  code value and meaning stay; a keep-list value naming the patient (a name part, an ID, the
  birth date) is removed or emptied, or the file refused where a module requires it.
- Screen-saved or converted images (a CT dose report, a digitized film) are excluded unless the
  file says Burned In Annotation = NO; a secondary image (an MPR) or a stray Conversion Type in a
  CT, MR, PET or NM image is not.

Synthetic data only (bench.ingest.synthetic: a fictional patient)."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from apps.deid import profile
from apps.deid.profile import Excluded, Reason, deidentify_file, identity_left
from bench.ingest.synthetic import ct_slice

KEY = b"f" * 32
PSEUDONYM = "CASE-TEXT-0001"

#: free text the table does not list, which a device, an interface or a person may fill with the
#: patient's details (keyword: marker value); none of them may leave
LEAKY = {
    "PatientBirthDateInAlternativeCalendar": "25130315",
    "PatientDeathDateInAlternativeCalendar": "25690101",
    "CommentsOnTheScheduledProcedureStep": "Pt lives at 14 Elmquist Rd, call daughter",
    "PerformedProcedureTypeDescription": "CT chest VIP Elmquist ward 4B",
    "TextValue": "Elmquist seen by Dr Quorra",
    "DocumentTitle": "Report for Elmquist",
    "ContentDescription": "Elmquist follow-up",
    "HL7InstanceIdentifier": "ELMQ-HL7-5521^^^HOSP",
    "DoseComment": "Elmquist dose note",
    "TreatmentStatusComment": "Elmquist treatment note",
    "OverrideReason": "Elmquist override",
    "SegmentLabel": "Elmquist tumour",
    "SegmentDescription": "Elmquist lesion outline",
    "SoftwareVersions": "Elmquist build",
    "PositionReferenceIndicator": "Elmquist",
}
#: kept as they came (reading the images needs them), with a value that names nobody
KEPT = {"Manufacturer": "Acme Imaging", "ManufacturerModelName": "Model 64",
        "ConvolutionKernel": "B30f", "RescaleType": "HU", "WindowCenterWidthExplanation": "LUNG",
        "StackID": "1"}


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _slice() -> Dataset:
    ds = ct_slice(study_uid=generate_uid(), series_uid=generate_uid(), index=0, rows=4, columns=4,
                  seed=bytes(32))
    ds.BurnedInAnnotation = "NO"
    return ds


def _with_text(ds: Dataset) -> Dataset:
    """``ds`` with every LEAKY and KEPT attribute at the top level and in an item of a sequence the
    table keeps (Anatomic Region Sequence, holding a code), nested a second level too."""
    inner = Dataset()
    outer = Dataset()
    outer.CodeValue, outer.CodingSchemeDesignator, outer.CodeMeaning = "T-D3000", "SRT", "Chest"
    for target in (ds, outer, inner):
        for keyword, value in {**LEAKY, **KEPT}.items():
            setattr(target, keyword, value)
    outer.AnatomicRegionModifierSequence = Sequence([inner])
    ds.AnatomicRegionSequence = Sequence([outer])
    return ds


def test_free_text_not_on_the_keep_list_does_not_leave_at_any_depth():
    data = deidentify_file(_bytes(_with_text(_slice())), pseudonym=PSEUDONYM, key=KEY).data
    assert b"Elmquist" not in data and b"ELMQ" not in data
    for date in (b"25130315", b"25690101"):
        assert date not in data
    out = pydicom.dcmread(io.BytesIO(data))
    outer = out.AnatomicRegionSequence[0]
    inner = outer.AnatomicRegionModifierSequence[0]
    for where in (out, outer, inner):
        for keyword in ("PatientBirthDateInAlternativeCalendar", "CommentsOnTheScheduledProcedureStep",
                        "PerformedProcedureTypeDescription", "DocumentTitle", "DoseComment", "SegmentDescription"):
            assert keyword not in where
        # what a module requires stays: present and empty (Type 2), the table's dummy (Type 1)
        assert where.PositionReferenceIndicator == "" and where.ContentDescription == ""
        assert where.SegmentLabel == "ANONYMIZED" and where.SoftwareVersions == "ANONYMIZED"
        # the keep-list stays as it came
        for keyword, value in KEPT.items():
            assert str(where[keyword].value) == value, keyword
    assert (outer.CodeValue, outer.CodeMeaning) == ("T-D3000", "Chest")  # a code in an item stays
    # what the profile wrote stays
    assert out.PatientName == PSEUDONYM and out.PatientID == PSEUDONYM
    assert out.PatientIdentityRemoved == "YES" and out.DeidentificationMethod == profile.METHOD
    assert out.DeidentificationMethodCodeSequence[0].CodeMeaning == profile.PROFILE_CODE[2]


def test_a_text_attribute_written_with_another_vr_is_caught_too():
    """A free-text attribute a writer encoded as UN (its value as bytes): the dictionary's VR
    decides, so it does not slip past the net."""
    ds = _slice()
    ds.add_new(0x00400400, "UN", b"Elmquist lives at 14 Elm Rd ")  # Comments on the Scheduled Procedure Step
    data = deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data
    assert b"Elmquist" not in data


def test_a_code_text_at_the_top_level_is_not_kept():
    """Code Value and Code Meaning are kept where codes are, in a sequence's items; at the top
    level of the data set they describe no code, and leave no text."""
    ds = _slice()
    ds.CodeMeaning = "Elmquist"
    data = deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data
    assert b"Elmquist" not in data


def test_identity_left_reports_free_text_not_on_the_keep_list():
    """A file that says Patient Identity Removed = YES (the profile's own output, without a
    pseudonym) but holds free text the net would remove, at the top level or nested: reported by
    path, never by value; the keep-list's attributes and the profile's own marking are not."""
    clean = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(_slice()), pseudonym="", key=KEY).data))
    for keyword, value in KEPT.items():
        setattr(clean, keyword, value)
    assert identity_left(clean) == []
    assert profile.deidentified(clean)
    clean.CommentsOnTheScheduledProcedureStep = LEAKY["CommentsOnTheScheduledProcedureStep"]
    clean.PatientBirthDateInAlternativeCalendar = LEAKY["PatientBirthDateInAlternativeCalendar"]
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
    item.DoseComment = LEAKY["DoseComment"]
    clean.AnatomicRegionSequence = Sequence([item])
    left = identity_left(clean)
    assert set(left) == {"CommentsOnTheScheduledProcedureStep", "PatientBirthDateInAlternativeCalendar",
                         "AnatomicRegionSequence[0].DoseComment"}
    assert not any("Elmquist" in path for path in left)
    assert not profile.deidentified(clean)


def test_the_check_before_it_leaves_refuses_free_text_the_net_missed(monkeypatch):
    """Should the net not run (a regression), the check before the file leaves applies the same
    rule: the file is refused, not exported with a comment naming its patient."""
    ds = _slice()
    ds.CommentsOnTheScheduledProcedureStep = LEAKY["CommentsOnTheScheduledProcedureStep"]
    monkeypatch.setattr(profile, "_safety_net", lambda dataset, patient=None: None)
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.FAILED
    del ds.CommentsOnTheScheduledProcedureStep  # and without it, the same file leaves
    out = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
    assert out.PatientName == PSEUDONYM


# ----------------------------------------------------------------------------- URLs and AE titles, codes

def test_urls_the_table_does_not_list_do_not_leave():
    """UR is free text too: a pixel data provider's URL with the patient's name in its query, a
    presentation address naming a person's machine, at the top level or in an item. (AE, in the
    net too, has no attribute in a data set that the table does not already act on.)"""
    ds = _slice()
    ds.PixelDataProviderURL = "https://pacs.example/p?name=Elmquist+Jane"
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", "Chest"
    item.ReceivingPresentationAddress = "https://elmquist.example/"
    ds.AnatomicRegionSequence = Sequence([item])
    data = deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data
    assert b"lmquist" not in data.lower()
    out = pydicom.dcmread(io.BytesIO(data))
    assert "PixelDataProviderURL" not in out
    assert "ReceivingPresentationAddress" not in out.AnatomicRegionSequence[0]
    assert out.AnatomicRegionSequence[0].CodeMeaning == "Chest"


def test_a_local_coding_schemes_meaning_does_not_leave_a_standard_ones_does():
    """In an item, a code of a scheme not on the reviewed list (99LOCAL: whatever a site typed)
    keeps its designator, its value and meaning get the table's dummy (the Code Sequence Macro
    requires them); a code of a standard scheme (SCT, DCM) stays as it came."""
    ds = _slice()
    local, standard, dicom_code = Dataset(), Dataset(), Dataset()
    local.CodeValue, local.CodingSchemeDesignator, local.CodeMeaning = "ELMQ1", "99LOCAL", "Jane Elmquist, 12 Elm St"
    standard.CodeValue, standard.CodingSchemeDesignator, standard.CodeMeaning = "51185008", "SCT", "Thorax"
    dicom_code.CodeValue, dicom_code.CodingSchemeDesignator, dicom_code.CodeMeaning = "121311", "DCM", "Localizer"
    ds.AnatomicRegionSequence = Sequence([local, standard])
    ds.DerivationCodeSequence = Sequence([dicom_code])
    data = deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data
    assert b"Elmquist" not in data and b"ELMQ" not in data
    out = pydicom.dcmread(io.BytesIO(data))
    first, second = out.AnatomicRegionSequence
    assert (first.CodeValue, first.CodingSchemeDesignator, first.CodeMeaning) == ("ANONYMIZED", "99LOCAL", "ANONYMIZED")
    assert (second.CodeValue, second.CodingSchemeDesignator, second.CodeMeaning) == ("51185008", "SCT", "Thorax")
    assert out.DerivationCodeSequence[0].CodeMeaning == "Localizer"
    # a file that says it is de-identified but holds a local code's text is not counted so
    clean = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(_slice()), pseudonym="", key=KEY).data))
    clean.AnatomicRegionSequence = Sequence([standard])
    assert identity_left(clean) == []
    clean.AnatomicRegionSequence = Sequence([standard, local])
    assert identity_left(clean) == ["AnatomicRegionSequence[1].CodeMeaning", "AnatomicRegionSequence[1].CodeValue"]


def test_a_urn_code_of_a_local_scheme_keeps_a_code_value():
    """A code given by its URN alone (no designator) had its URN value removed: an item with no
    code value at all, which the Code Sequence Macro forbids (Type 1C). It gets the URI dummy."""
    ds = _slice()
    urn = Dataset()
    urn.URNCodeValue, urn.CodeMeaning = "urn:example:site:patient:jane-elmquist", "Jane Elmquist"
    ds.AnatomicRegionSequence = Sequence([urn])
    data = deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data
    assert b"elmquist" not in data.lower()
    item = pydicom.dcmread(io.BytesIO(data)).AnatomicRegionSequence[0]
    assert item.URNCodeValue == "http://anonymized.invalid" and item.CodeMeaning == "ANONYMIZED"


# ----------------------------------------------------------------------------- keep-list values naming the patient

def _patient(ds: Dataset) -> Dataset:
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Roe^Jane", "998877", "19700101"
    return ds


def test_a_keep_list_value_naming_the_patient_does_not_leave():
    """The keep-list is kept for what a device writes there; one a writer filled with the
    patient's name (a part of three letters or more, in any case), ID or birth date is removed,
    or emptied where a module requires it present (Manufacturer, Type 2), and the file leaves."""
    ds = _patient(_slice())
    ds.Manufacturer = "Jane Roe 555-0100"
    ds.ManufacturerModelName = "MRN 998877"
    ds.ConvolutionKernel = "Roe J 1970"
    ds.SequenceName = "dob 1970-01-01"
    ds.WindowCenterWidthExplanation = "LUNG"
    item = Dataset()
    item.Radiopharmaceutical = "FDG for jane roe"
    ds.RadiopharmaceuticalInformationSequence = Sequence([item])
    data = deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data
    assert b"Roe" not in data and b"roe" not in data and b"998877" not in data and b"1970" not in data
    out = pydicom.dcmread(io.BytesIO(data))
    assert out.Manufacturer == ""
    for keyword in ("ManufacturerModelName", "ConvolutionKernel", "SequenceName"):
        assert keyword not in out, keyword
    assert "Radiopharmaceutical" not in out.RadiopharmaceuticalInformationSequence[0]
    assert out.WindowCenterWidthExplanation == "LUNG"  # naming nobody: kept


def test_a_keep_list_value_is_matched_as_a_word_not_inside_one():
    """A short name part is looked for as a word: a patient named Phil keeps a Philips scanner's
    make, and an ID of digits is not found inside a longer number."""
    ds = _slice()
    ds.PatientName, ds.PatientID = "Phil^Ann", "3010"
    ds.Manufacturer, ds.ConvolutionKernel = "Philips Medical Systems", "B30103f"
    out = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
    assert (out.Manufacturer, out.ConvolutionKernel) == ("Philips Medical Systems", "B30103f")


def test_a_name_part_found_inside_a_dummy_is_still_looked_for_as_a_word():
    """A name part or ID that occurs inside a dummy the profile writes ("Zed" in ANONYMIZED,
    "0101" in the dummy date) names the patient as a word all the same; the dummies themselves
    are not taken for the patient's name."""
    ds = _slice()
    ds.PatientName, ds.PatientID = "Zed^Ann", "0101"
    ds.ConvolutionKernel, ds.SequenceName = "zed 2", "seq 0101"
    ds.WindowCenterWidthExplanation = "LUNG"
    out = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
    assert "ConvolutionKernel" not in out and "SequenceName" not in out
    assert out.WindowCenterWidthExplanation == "LUNG"
    pattern = profile._patient_words(ds)
    assert pattern.search("zed 2") and not any(pattern.search(dummy) for dummy in profile._DUMMIES)


def test_a_required_keep_list_value_naming_the_patient_refuses_the_file():
    """Rescale Type is required (Modality LUT, Type 1C): one naming the patient cannot be removed,
    so the file is refused, not exported with it nor without it."""
    ds = _patient(_slice())
    ds.RescaleType = "ROE"
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.FAILED
    ds.RescaleType = "HU"
    out = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
    assert out.RescaleType == "HU"


def test_the_check_before_it_leaves_refuses_a_keep_list_value_naming_the_patient(monkeypatch):
    """Should the net not run, the check before the file leaves looks into the keep-list's values
    for the patient's name parts too (shorter than the six characters it looks for elsewhere)."""
    ds = _patient(_slice())
    ds.ConvolutionKernel = "Roe J"
    monkeypatch.setattr(profile, "_safety_net", lambda dataset, patient=None: None)
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.FAILED
    ds.ConvolutionKernel = "B30f"
    assert pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))


# ----------------------------------------------------------------------------- screen saves and converted images

CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
XA_IMAGE = "1.2.840.10008.5.1.4.1.1.12.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
PET_IMAGE = "1.2.840.10008.5.1.4.1.1.128"


@pytest.mark.parametrize("change", [
    {"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]},           # a CT dose report
    {"ImageType": ["ORIGINAL", "PRIMARY", "SCREEN SAVE"]},
    {"SOPClassUID": CR_IMAGE, "Modality": "CR", "ConversionType": "DF"},   # a digitized film
    {"SOPClassUID": XA_IMAGE, "Modality": "XA", "ConversionType": "WSD"},  # a workstation's capture
    {"SOPClassUID": CR_IMAGE, "Modality": "CR", "ConversionType": "SCANNER"},  # a kind not defined
], ids=["dose_report", "screen_save", "digitized_film", "workstation_capture", "unknown_conversion"])
def test_screen_saved_or_converted_images_are_excluded_unless_they_say_no_burned_in_text(change):
    ds = _slice()
    del ds.BurnedInAnnotation
    for keyword, value in change.items():
        setattr(ds, keyword, value)
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.SECONDARY_IMAGE
    assert str(Reason(Reason.SECONDARY_IMAGE).label)
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.BURNED_IN
    ds.BurnedInAnnotation = "NO"
    out = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
    assert out.PatientIdentityRemoved == "YES"


@pytest.mark.parametrize("change", [
    {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]},
    {"ImageType": ["DERIVED", "SECONDARY", "OTHER"]},                  # pydicom's MR_small
    {"SOPClassUID": MR_IMAGE, "Modality": "MR",
     "ImageType": ["DERIVED", "SECONDARY", "MPR", "CSA MPR", "", "CSAPARALLEL", "M", "ND", "NORM"]},  # a Siemens MPR
    {"ImageType": ["DERIVED", "SECONDARY", "REFORMATTED", "AVERAGE"]},  # a GE reformat
    {"ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "ConversionType": "DV"},  # pydicom's explicit_VR-UN.dcm
    {"SOPClassUID": MR_IMAGE, "Modality": "MR", "ConversionType": "WSD"},
    {"SOPClassUID": PET_IMAGE, "Modality": "PT", "ConversionType": "DF"},
    {"SOPClassUID": CR_IMAGE, "Modality": "CR", "ConversionType": "DI"},  # the device's digital output
], ids=["original", "secondary", "siemens_mpr", "ge_reformat", "ct_with_conversion_type", "mr_with_conversion_type",
        "pet_with_conversion_type", "digital_interface"])
def test_secondary_images_and_stray_conversion_types_are_exported(change):
    """Image Type SECONDARY (an MPR, a MIP, a reformat) says nothing about text in the pixels, and
    a Conversion Type in a CT, MR, PET or NM image (whose IOD has no SC Equipment module) is a
    stray: exported without Burned In Annotation = NO."""
    ds = _slice()
    del ds.BurnedInAnnotation
    for keyword, value in change.items():
        setattr(ds, keyword, value)
    assert profile.exclusion_reason(ds) is None
    out = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
    assert out.PatientIdentityRemoved == "YES"


def test_the_screen_save_reason_names_what_its_rule_excludes():
    """The reason began "Secondary, ..." though its rule no longer excludes an image for being
    SECONDARY alone (MPRs, MIPs and reformats are exported): a reader would look for a reformat."""
    label = str(Reason.SECONDARY_IMAGE.label)
    assert not label.startswith("Secondary") and "Screen-saved or converted image" in label
