"""The profile's safety net for free text, and the images it leaves out for what their pixels may
show (apps.deid.profile).

- Free text (LO, LT, ST, UT, UC, SH, PN) the table does not list leaves only if it is on the
  reviewed keep-list (codes in items, the make and model, kernel and sequence names, units and
  window presets): a comment on a procedure step, a document title, a dose comment, a segment's
  label, a birth date in an alternative calendar do not, at the top level or nested in a sequence
  the table keeps. What a module requires stays present, empty or with the table's dummy.
- ``identity_left`` (which decides whether a file saying Patient Identity Removed = YES counts as
  de-identified) reports such text; the check before a file leaves refuses it.
- Secondary, screen-saved or converted images (a CT dose report) are excluded unless the file
  says Burned In Annotation = NO.

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
    monkeypatch.setattr(profile, "_safety_net", lambda dataset: None)
    with pytest.raises(Excluded) as excinfo:
        deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY)
    assert excinfo.value.reason == Reason.FAILED
    del ds.CommentsOnTheScheduledProcedureStep  # and without it, the same file leaves
    out = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
    assert out.PatientName == PSEUDONYM


# ----------------------------------------------------------------------------- secondary images

@pytest.mark.parametrize("change", [
    {"ImageType": ["DERIVED", "SECONDARY", "SCREEN SAVE"]},   # a CT dose report
    {"ImageType": ["DERIVED", "SECONDARY", "OTHER"]},
    {"ImageType": ["ORIGINAL", "PRIMARY", "SCREEN SAVE"]},
    {"ConversionType": "WSD"},                                 # a workstation's capture
])
def test_secondary_screen_saved_or_converted_images_are_excluded_unless_they_say_no_burned_in_text(change):
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


def test_an_original_primary_image_is_exported():
    ds = _slice()
    del ds.BurnedInAnnotation
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    out = pydicom.dcmread(io.BytesIO(deidentify_file(_bytes(ds), pseudonym=PSEUDONYM, key=KEY).data))
    assert out.PatientIdentityRemoved == "YES"
