"""The Basic Application Level Confidentiality Profile of DICOM PS3.15 Annex E, on one instance.

The table (Table E.1-1: which attribute gets which action, D/Z/X/K/C/U) is not written here: it
comes from dicom-anonymizer (KitwareMedical), which ships it per edition of the standard
(``TABLE``), applies it to a pydicom Dataset (repeating groups, the file meta group) and removes
private tags. What Lightbox decides on top of it:

- **UIDs** (action U, and any other non-registered UID left anywhere, sequences and file meta
  included, a UID attribute written with another VR too) map to ``2.25.<keyed hash>``:
  HMAC-SHA256 under the export's key, so one input UID gives the same output UID in every file
  of one export (studies, series, instances and the references between them stay consistent)
  and a different one in another export.
  dicom-anonymizer's own UID replacement (a process-wide dictionary of random UIDs) is never
  called: its U rules are replaced here, and its D replacement is not used on UIDs.
- **Sequences**: the table's actions apply in sequence items too, at any depth (dicom-anonymizer
  applies them to top-level attributes only): ``_clean_sequences``.
- **Where the original can be fetched from** (Retrieve URL and URI, storage and file access
  URLs, not in the table) is removed at any depth: a DICOMweb URL names the organization's server
  and holds the original Study Instance UID.
- **Overlay planes** lose what the table leaves of them (their data and comments are X): the
  whole 60xx group goes, not a description of an overlay that is no longer there.
- **Elements the data dictionary does not name** are removed, as private ones are: what the table
  would do to them cannot be known, and a damaged file's corrupted tag lands there with the value
  of the attribute it was (a patient's name under (1710,0010)).
- **Checked before it leaves** (``_left_from``): a file whose output still holds one of the
  original's UIDs (other than those the standard defines), its patient's name or ID or its
  accession number, wherever
  (a damaged file's value read into another attribute, a kept attribute a writer filled with
  them; in compressed pixel data, a JPEG comment), or a text value with control characters (a
  corrupted length read the attributes after it into one value), is refused
  (``Reason.FAILED``), never exported.
- **Patient name and ID** become the pseudonym the exporter chose; any other person name left
  (inside a sequence the table keeps) is emptied, any date or time left gets the dummy value.
- **Free text** the table does not list (LO, LT, ST, UT, UC, SH, and URLs and AE titles, UR and
  AE: a comment on a procedure step, a document title, a dose comment, a segment's label, a birth
  date in an alternative calendar, a pixel data provider's URL with a name in its query) is
  removed at any depth, but for a short reviewed list needed to read the images (the make and
  model, kernel and sequence names, units and window presets: ``TEXT_KEPT``; in items, codes of
  a standard coding scheme: ``STANDARD_SCHEMES``); a Type 2 one is emptied, a Type 1 one gets the
  table's dummy (``_free_text_action``), a local scheme's code value and meaning too. A keep-list
  value holding the patient's name (a part of three letters or more, in any case), an ID or the
  birth date is not kept: removed or emptied, and a file where a module requires it
  (``TEXT_KEPT_REQUIRED``) is refused. The check before it leaves and ``identity_left`` apply the
  same rule.
- **Marking**: Patient Identity Removed = YES, De-identification Method naming the profile,
  De-identification Method Code Sequence = (113100, DCM, "Basic Application Confidentiality
  Profile"), Longitudinal Temporal Information Modified = REMOVED (dates are not kept).
- **File meta** is rebuilt: Media Storage SOP Instance UID = the new SOP Instance UID, our
  implementation class, nothing of the sending system.
- **Exclusions** (``exclusion_reason``): instances whose pixels may show identifying text or
  features are never exported: Burned In Annotation = YES, Recognizable Visual Features = YES,
  document, video, photographic and secondary capture SOP classes, secondary, screen-saved or
  converted images of any SOP class (an Image Type naming SCREEN SAVE: a CT dose report; a
  Conversion Type but DI outside CT, MR, PET and NM: ``_secondary``; never Image Type SECONDARY
  alone: an MPR or MIP series) unless the file says Burned In Annotation = NO, modalities where burned-in
  text is the rule (ultrasound, by its modality or its SOP class, endoscopy, photography) unless
  the file says Burned In Annotation = NO, and objects without pixel data (reports and other non-image objects).
  The profile cleans headers only; pixels are never changed (Clean Pixel Data is not offered).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from typing import IO

import pydicom
from dicomanonymizer import simpledicomanonymizer as kitware
from django.db import models
from django.utils.translation import gettext_lazy as _
from pydicom.datadict import get_entry
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, UID_dictionary

from apps.imaging import dicom

#: the edition of Table E.1-1 dicom-anonymizer applies (its newest)
TABLE = "dicomfields_2026c"
PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
#: De-identification Method (0012,0063) is LO (64 characters at most)
METHOD = "DICOM PS3.15 Annex E Basic Profile (Lightbox deid 1)"
IMPLEMENTATION_VERSION = "LIGHTBOX_DEID_1"

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
SECONDARY_CAPTURE = frozenset({"1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.1",
                               "1.2.840.10008.5.1.4.1.1.7.2", "1.2.840.10008.5.1.4.1.1.7.3",
                               "1.2.840.10008.5.1.4.1.1.7.4"})
DOCUMENT_PREFIX = "1.2.840.10008.5.1.4.1.1.104."       # encapsulated PDF, CDA, STL, OBJ, MTL
VISIBLE_LIGHT_PREFIX = "1.2.840.10008.5.1.4.1.1.77.1."  # video, photographic, ophthalmic, dermoscopic
#: modalities where text is burned into the pixels as a rule: only with Burned In Annotation = NO
BURNED_IN_LIKELY_MODALITIES = frozenset({"US", "IVUS", "ES", "XC", "GM", "OP", "DOC", "SC"})
#: ultrasound SOP classes (image and multi-frame, their retired first versions, enhanced volume):
#: the same rule whatever the Modality attribute says (a converted file may say OT, or nothing)
ULTRASOUND_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.3.1",
                                    "1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.3",
                                    "1.2.840.10008.5.1.4.1.1.6.2"})
#: CT, MR, PET and NM image SOP classes (their enhanced and legacy converted enhanced versions, the
#: retired NM one): images reconstructed from the device's raw data, whose IODs do not include the
#: SC Equipment module; a Conversion Type written in them is not believed (``_secondary``)
RECONSTRUCTED_SOP_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2",    # CT
    "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.4.3",    # MR
    "1.2.840.10008.5.1.4.1.1.4.4",
    "1.2.840.10008.5.1.4.1.1.128", "1.2.840.10008.5.1.4.1.1.130", "1.2.840.10008.5.1.4.1.1.128.1",  # PET
    "1.2.840.10008.5.1.4.1.1.20", "1.2.840.10008.5.1.4.1.1.5",                                    # NM
})


class Reason(models.TextChoices):
    """Why an instance was left out of an export (stored as the code; shown translated)."""

    BURNED_IN = "burned_in", _("Burned-in annotation: text in the pixels may identify the patient.")
    VISUAL_FEATURES = "visual_features", _("Recognizable visual features (a face or a photograph).")
    DOCUMENT = "document", _("An encapsulated document (PDF, CDA or a 3D model): its content cannot be cleaned.")
    VIDEO_OR_PHOTO = "video_or_photo", _("Video or photograph: burned-in text is likely and cannot be cleaned.")
    SECONDARY_CAPTURE = "secondary_capture", _("Secondary capture (a screen or scan): burned-in text is likely.")
    SECONDARY_IMAGE = "secondary_image", _(
        "Screen-saved or converted image (a dose report, a capture of a screen, a scanned film): text in the "
        "pixels is likely, and the file does not say it is free of it.")
    BURNED_IN_LIKELY = "burned_in_likely", _(
        "Modality where text is usually burned into the pixels, and the file does not say it is free of it.")
    NO_PIXELS = "no_pixels", _("Not an image (a report or other object without pixel data).")
    UNREADABLE = "unreadable", _("The stored file could not be read as DICOM.")
    #: its stored (encrypted) file failed its integrity check: its bytes were altered since it was
    #: stored (``cryptography.exceptions.InvalidTag``), recorded as ``blob.integrity_failed``
    INTEGRITY_FAILED = "integrity_failed", _(
        "The stored file failed its integrity check (it was altered since it was stored), so it was not "
        "exported. This has been recorded for your organization's security officer.")
    FAILED = "failed", _("The file could not be de-identified.")


class Excluded(Exception):
    """The instance must not leave: ``reason`` is a Reason code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def uid_for(key: bytes, uid: str) -> str:
    """The replacement of ``uid`` under ``key``: ``2.25.`` and a 128-bit number (a UUID, version
    8 "custom", variant RFC 4122, from HMAC-SHA256), at most 44 characters."""
    n = int.from_bytes(hmac.new(key, uid.strip().encode("ascii", "replace"), hashlib.sha256).digest()[:16], "big")
    n = (n & ~(0xF << 76)) | (0x8 << 76)      # version 8
    n = (n & ~(0x3 << 62)) | (0x2 << 62)      # variant 10
    return f"2.25.{n}"


def _registered(uid: str) -> bool:
    """A UID the standard defines (SOP classes, transfer syntaxes, coding schemes, well-known
    frames of reference): it identifies a kind of thing, not a patient's, so it stays."""
    return uid in UID_dictionary


def exclusion_reason(ds: Dataset, *, header_only: bool = False) -> str | None:
    """The Reason code that keeps this instance out of a de-identified export, or None.
    ``header_only``: ``ds`` was read without its pixel data (``stop_before_pixels``), so it is
    decided as an image (its pixels are not looked for): never NO_PIXELS."""
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return Reason.BURNED_IN
    if str(ds.get("RecognizableVisualFeatures", "")).strip().upper() == "YES":
        return Reason.VISUAL_FEATURES
    sop_class = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    if sop_class.startswith(DOCUMENT_PREFIX) or "EncapsulatedDocument" in ds:
        return Reason.DOCUMENT
    if sop_class.startswith(VISIBLE_LIGHT_PREFIX):
        return Reason.VIDEO_OR_PHOTO
    if sop_class in SECONDARY_CAPTURE:
        return Reason.SECONDARY_CAPTURE
    if not header_only and not any(k in ds for k in _PIXEL_KEYWORDS):
        return Reason.NO_PIXELS
    if _secondary(ds) and str(ds.get("BurnedInAnnotation", "")).strip().upper() != "NO":
        return Reason.SECONDARY_IMAGE
    modality = str(ds.get("Modality", "")).strip().upper()
    likely = modality in BURNED_IN_LIKELY_MODALITIES or sop_class in ULTRASOUND_SOP_CLASSES
    if likely and str(ds.get("BurnedInAnnotation", "")).strip().upper() != "NO":
        return Reason.BURNED_IN_LIKELY
    return None


#: the exclusion reasons that say an image's pixels themselves may identify its patient: text
#: burned into them, said (Burned In Annotation = YES) or likely (a secondary capture, a screen
#: save or converted image, video or a photograph, a modality where text is burned in as a rule,
#: unless the file says Burned In Annotation = NO), or a recognizable face. Ingest records it on
#: each instance (``apps.imaging.models.Instance.pixels_may_identify``), and the sharing policy
#: gives no such image through an anonymous link without a second factor.
PIXELS_MAY_IDENTIFY_REASONS = frozenset({Reason.BURNED_IN, Reason.VISUAL_FEATURES, Reason.VIDEO_OR_PHOTO,
                                         Reason.SECONDARY_CAPTURE, Reason.SECONDARY_IMAGE, Reason.BURNED_IN_LIKELY})


def pixels_may_identify(ds: Dataset, *, header_only: bool = False) -> bool:
    """Whether ``ds``'s pixels may identify its patient: ``exclusion_reason`` (the one screening
    the de-identification applies) is one of ``PIXELS_MAY_IDENTIFY_REASONS``. ``header_only``: as
    for ``exclusion_reason``."""
    return exclusion_reason(ds, header_only=header_only) in PIXELS_MAY_IDENTIFY_REASONS


def _secondary(ds: Dataset) -> bool:
    """Whether the image is a capture of a screen or something converted into an image, whatever
    its SOP class: its pixels are what was on a display, a film or a page, text included.

    - Image Type (0008,0008, PS3.3 C.7.6.1.1.2) naming SCREEN SAVE, in any value from the third
      on (implementation-specific there): a vendor's capture of a console screen written as an
      image of the modality (a CT dose report as DERIVED\\SECONDARY\\SCREEN SAVE).
    - Conversion Type (0008,0064), the SC Equipment module's (PS3.3 C.8.6.1) account of how the
      image was made: digitized video (DV), film (DF), a workstation's capture (WSD), a scanned
      document or image (SD, SI), a drawing (DRW), a synthetic image (SYN), or a kind it does not
      define; all but DI (Digital Interface: the device's own digital output, no capture). It is
      believed only in SOP classes other than CT, MR, PET and NM (``RECONSTRUCTED_SOP_CLASSES``):
      their images are reconstructed from the device's raw data and cannot be a digitized video
      or film, and their IODs do not include the SC Equipment module, so a value there is a stray
      a writer copied (pydicom's explicit_VR-UN.dcm, an ORIGINAL\\PRIMARY\\AXIAL CT, says DV).
      A Secondary Capture SOP class is left out whatever it says (``SECONDARY_CAPTURE``).

    Image Type value 2 SECONDARY alone says nothing about text in the pixels: it marks any image
    made after the examination, every MPR, MIP and reformatted series (Siemens
    DERIVED\\SECONDARY\\MPR, GE ...\\REFORMATTED), computed from the acquired pixels and holding no
    more text than they do. It does not exclude."""
    try:
        image_type = [v.upper() for v in _texts(ds.get("ImageType"))]
        conversion = [v.upper() for v in _texts(ds.get("ConversionType")) if v]
    except Exception:  # noqa: BLE001 - a value that cannot be read as text says nothing
        return False
    if "SCREEN SAVE" in image_type[2:]:
        return True
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    return sop_class not in RECONSTRUCTED_SOP_CLASSES and any(v != "DI" for v in conversion)


# ----------------------------------------------------------------------------- the table

def _uid_later(dataset: Dataset, tag: tuple[int, int]) -> None:
    """U: left for the UID pass (``_map_uids``), which maps every UID of the file the same way."""


def _replace_element(element) -> None:
    """D (dicom-anonymizer's dummy values), except UIDs (the UID pass maps them) and sequences,
    whose items are walked here so that a UID inside never reaches dicom-anonymizer's random map."""
    if element.VR == "UI":
        return
    if element.VR == "SQ":
        for item in element.value or ():
            for sub in item:  # iterating a Dataset converts raw elements
                _replace_element(sub)
        return
    kitware.replace_element(element)


def _replace(dataset: Dataset, tag: tuple[int, int]) -> None:
    element = dataset.get(tag)
    if element is not None:
        _replace_element(element)


def _empty_keeping_uids(element) -> None:
    if element.VR == "UI":
        return
    if element.VR == "SQ":
        for item in element.value or ():
            for sub in item:
                _empty_keeping_uids(sub)
        return
    kitware.empty_element(element)


def _delete_or_empty_or_uid(dataset: Dataset, tag: tuple[int, int]) -> None:
    """X/Z/U* (Referenced Image, Source Image sequences): the references stay, their instance
    UIDs mapped by the UID pass like the instances they name; anything else in them emptied.
    (dicom-anonymizer would empty the UIDs too, breaking the references.)"""
    element = dataset.get(tag)
    if element is not None:
        _empty_keeping_uids(element)


def _rules() -> dict:
    """Table E.1-1 as dicom-anonymizer reads it, with our UID handling for U, D, Z/D, X/D,
    X/Z/D and X/Z/U* (the other actions are dicom-anonymizer's)."""
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    tags = dicom_anonymization_database_selector(TABLE)
    rules = kitware.initialize_actions(TABLE)
    for category in ("D_TAGS", "Z_D_TAGS", "X_D_TAGS", "X_Z_D_TAGS"):
        rules.update({tag: _replace for tag in tags[category]})
    rules.update({tag: _uid_later for tag in tags["U_TAGS"]})
    rules.update({tag: _delete_or_empty_or_uid for tag in tags["X_Z_U_STAR_TAGS"]})
    return rules


_RULES: dict | None = None


def rules() -> dict:
    global _RULES
    if _RULES is None:
        _RULES = _rules()
    return dict(_RULES)


def _clean_sequences(ds: Dataset, table: dict) -> None:
    """The table inside sequences, at any depth (PS3.15 E.1.1: K is "cleaned for sequences").
    dicom-anonymizer applies each attribute's action to top-level attributes only, so a record
    number, accession number, institution or address in an item of a sequence the table keeps
    (or does not list) would leave as it came; here each item's attributes get their actions,
    then the sequences left in the item are walked the same way."""
    for element in list(ds):
        if element.VR != "SQ":
            continue
        for item in element.value or ():
            for tag in [(e.tag.group, e.tag.element) for e in item]:
                action = table.get(tag)
                if action is not None:
                    action(item, tag)
            _clean_sequences(item, table)


#: free-text VRs: what a person, a device or an interface can write anything into (a URL's query
#: and an AE title included: a name, an ID, a workstation named after its user)
FREE_TEXT_VRS = frozenset({"LO", "LT", "ST", "UT", "UC", "SH", "PN", "UR", "AE"})
#: the dummy value the table's D action writes into a text (dicom-anonymizer's)
_TEXT_DUMMY = "ANONYMIZED"
#: the dummy the table's D action writes into a URL (dicom-anonymizer's)
_URL_DUMMY = "http://anonymized.invalid"
#: free text the safety net leaves as it is (a short list, reviewed attribute by attribute: none
#: holds what a person types about a patient, and reading the images needs them): what a code
#: says; the make and model of the equipment (not its serial number, station or institution:
#: those are the table's); how the device names the acquisition and reconstruction (kernel, pulse
#: sequence, nucleus, tracer); the pixel values' units and the display's presets and labels; the
#: stack of a multi-frame image; and the De-identification Method this profile writes. Descriptions
#: (Study, Series, Protocol) are not here: the basic profile removes them (X, D) and this profile
#: declares no option that keeps them (its De-identification Method Code Sequence names 113100
#: only: no Clean Descriptors, 113105, nor any Retain option).
TEXT_KEPT = frozenset({
    "Manufacturer", "ManufacturerModelName",
    "ConvolutionKernel", "SequenceName", "PulseSequenceName", "ImagedNucleus", "Radiopharmaceutical",
    "RescaleType", "ModalityLUTType", "WindowCenterWidthExplanation", "LUTExplanation", "LUTLabel",
    "StackID",
    "DeidentificationMethod",
})
#: keep-list attributes a module requires to have a value (Modality LUT: Rescale Type, Modality LUT
#: Type; Enhanced MR: Pulse Sequence Name; Frame Content: Stack ID; Enhanced Palette Color LUT: LUT
#: Label): one holding the patient's name, ID or birth date cannot be removed, so the file is refused
TEXT_KEPT_REQUIRED = frozenset({"RescaleType", "ModalityLUTType", "PulseSequenceName", "StackID", "LUTLabel"})
#: keep-list attributes a module requires to be present (General Equipment: Manufacturer, Type 2):
#: emptied when they hold the patient's name, ID or birth date
TEXT_KEPT_EMPTIED = frozenset({"Manufacturer"})
#: what a code says (the Code Sequence Macro's text): kept in a sequence's items, where codes are
CODE_TEXT = frozenset({"CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning",
                       "LongCodeValue", "URNCodeValue"})
#: what a code is and says when its coding scheme is not one of ``STANDARD_SCHEMES``: a local
#: scheme's value and meaning are whatever a site typed (a patient's name and address as an
#: anatomic region's meaning); the Code Sequence Macro requires them (Type 1, 1C), so they get the
#: table's dummy (a URN value the URI dummy: an item whose only code value it is keeps one)
CODE_VALUE_TEXT = frozenset({"CodeValue", "LongCodeValue", "CodeMeaning", "URNCodeValue"})
#: coding schemes whose codes and meanings are published terms (PS3.16 Section 8: DICOM, SNOMED CT
#: and SNOMED-RT, LOINC, UCUM, FMA, RadLex, NCI Thesaurus, UMLS, the ACR index, ISO/IEEE 11073):
#: their meanings name no patient; any other designator (99LOCAL, a site's) is a local scheme
STANDARD_SCHEMES = frozenset({"DCM", "SCT", "SRT", "SNM3", "LN", "UCUM", "FMA", "RADLEX", "NCIT", "UMLS", "ACR",
                              "MDC"})
#: free text an image object's module requires to be present (Type 2): emptied, not removed, as
#: the table's Z action does (Frame of Reference: Position Reference Indicator; Content
#: Identification: Content Description; RT Image: Radiation Machine Name)
TEXT_EMPTIED = frozenset({"PositionReferenceIndicator", "ContentDescription", "RadiationMachineName"})
#: free text a module requires to have a value (Type 1, 1C): the table's dummy, as its D action
#: writes (Enhanced General Equipment: Software Versions; Segmentation: Segment Label and
#: Algorithm Name; MR coils; RT Image: RT Image Label)
TEXT_REPLACED = frozenset({"SoftwareVersions", "SegmentLabel", "SegmentAlgorithmName", "ReceiveCoilName",
                           "TransmitCoilName", "RTImageLabel"})


def _text_vr(element) -> str | None:
    """The element's free-text VR, or None for any other value: the dictionary's (a text attribute
    a writer encoded as UN or OB is text; a UID written as LO is a UID, mapped), its own for an
    element the dictionary does not name."""
    vr = _dictionary_vr(element.tag) or element.VR
    return vr if vr in FREE_TEXT_VRS else None


def _patient_words(ds: Dataset) -> re.Pattern | None:
    """What names the patient in ``ds`` (any depth), as a pattern matched in any case: the parts
    of their names (Patient's Name, Other Patient Names, Patient's Birth Name) of three letters or
    more, their IDs (Patient ID, Other Patient IDs, the accession number, the medical record
    locator) of three characters or more, and their birth date (as written, and as YYYY-MM-DD,
    YYYY/MM/DD, YYYY.MM.DD). Each is found as a whole word (not inside a longer word or number:
    "Phil" is not in "Philips"), one of six characters or more anywhere. None: nothing to look for."""
    words: set[str] = set()

    def visit(dataset: Dataset, element) -> None:
        try:
            values = _texts(element.value) if element.VR != "SQ" else []
        except Exception:  # noqa: BLE001 - a value that cannot be read as text names nobody here
            return
        if element.keyword in ("PatientName", "OtherPatientNames", "PatientBirthName"):
            for value in values:
                words.update(part for part in re.split(r"[\^=,\s]+", value) if len(re.sub(r"[\W\d_]", "", part)) >= 3)
        elif element.keyword in ("PatientID", "OtherPatientIDs", "AccessionNumber", "MedicalRecordLocator"):
            words.update(value for value in values if len(value) >= 3 and value.strip("0"))
        elif element.keyword == "PatientBirthDate":
            for value in values:
                if re.fullmatch(r"\d{8}", value):
                    words.add(value)
                    words.update(f"{value[:4]}{sep}{value[4:6]}{sep}{value[6:]}" for sep in "-/.")

    ds.walk(visit)
    # a word is looked for as its pattern finds it; one that pattern finds in a dummy the profile
    # writes (an ID "ANONYMIZED") is left out, or every dummy would name the patient. One it does
    # not find there (a name "Zed" is a word, not inside "ANONYMIZED") is looked for like any other
    alternatives = [alt for alt in (re.escape(w) if len(w) >= _SHORTEST else rf"(?<![^\W_]){re.escape(w)}(?![^\W_])"
                                    for w in sorted(words, key=len, reverse=True))
                    if not any(re.search(alt, dummy, re.IGNORECASE) for dummy in _DUMMIES)]
    if not alternatives:
        return None
    return re.compile("|".join(alternatives), re.IGNORECASE)


def _names_patient(element, patient: re.Pattern | None) -> bool:
    try:
        return patient is not None and any(patient.search(t) for t in _texts(element.value))
    except Exception:  # noqa: BLE001 - a value that cannot be read as text: the other checks decide
        return False


def _standard_code(dataset: Dataset) -> bool:
    return str(dataset.get("CodingSchemeDesignator", "") or "").strip().upper() in STANDARD_SCHEMES


def _free_text_action(element, *, dataset: Dataset, top: bool, patient: re.Pattern | None = None) -> str | None:
    """What the safety net does to ``element`` of ``dataset``: "delete", "empty", "dummy",
    "refuse" or None (it stays). A date in an alternative calendar (LO) is a date: removed. A
    free-text value (``FREE_TEXT_VRS``) not in ``TEXT_KEPT`` (nor in ``CODE_TEXT`` in a sequence's
    item: ``top`` False), neither empty nor the table's dummy: a person name is emptied (as
    before); a required one emptied or given the dummy (``TEXT_EMPTIED``, ``TEXT_REPLACED``); any
    other removed. In an item, a code's value and meaning in a scheme not in ``STANDARD_SCHEMES``
    get the dummy (a URN value is removed); a standard scheme's are published terms, kept (not
    matched against the patient's name: a patient named Head and a code meaning "Head"). A
    ``TEXT_KEPT`` value naming the patient (``patient``, from ``_patient_words``) is emptied
    (``TEXT_KEPT_EMPTIED``), refused (``TEXT_KEPT_REQUIRED``) or removed."""
    if element.tag.is_private:
        return None
    if "AlternativeCalendar" in element.keyword:
        return "delete"
    vr = _text_vr(element)
    if vr is None:
        return None
    texts = [t for t in _texts(element.value) if t]
    if texts and vr == "PN":
        return "empty"
    if not texts or all(t in (_TEXT_DUMMY, _URL_DUMMY) for t in texts):
        return None
    code = not top and element.keyword in CODE_TEXT
    if element.keyword in TEXT_KEPT or code:
        if code and element.keyword in CODE_VALUE_TEXT and not _standard_code(dataset):
            return "dummy"  # a URN value too (a URI dummy): the macro needs one code value (1C)
        if code or element.keyword == "DeidentificationMethod" or not _names_patient(element, patient):
            return None
        if element.keyword in TEXT_KEPT_REQUIRED:
            return "refuse"
        return "empty" if element.keyword in TEXT_KEPT_EMPTIED else "delete"
    if element.keyword in TEXT_EMPTIED:
        return "empty"
    if element.keyword in TEXT_REPLACED:
        return "dummy"
    return "delete"


def _safety_net(ds: Dataset, patient: re.Pattern | None = None) -> None:
    """Under the table, at any depth: the table lists the attributes known to identify, and a
    device, an interface or a person can write a patient's details into any other text (a comment
    on a procedure step, a document title, a dose comment, a segment's label, a birth date in an
    alternative calendar). So every free-text value the table left is removed unless it is one of
    the few reviewed as safe and needed (``_free_text_action``); every person name left is emptied
    and every date, date-time and time gets the table's dummy value (the basic profile keeps none:
    keeping them is the Retain Longitudinal Temporal Information option, not offered).
    ``patient`` (``_patient_words`` of the original): a kept value naming the patient is not kept;
    raises Excluded (``Reason.FAILED``) when a module requires it."""

    refused: list[int] = []

    def visit(dataset: Dataset, element) -> None:
        action = _free_text_action(element, dataset=dataset, top=dataset is ds, patient=patient)
        if action == "refuse":  # raised once the walk is over (pydicom's walk rewraps exceptions)
            refused.append(element.tag)
        elif action == "delete":
            del dataset[element.tag]
        elif action is not None:
            dataset[element.tag] = DataElement(element.tag, _text_vr(element),
                                               (_URL_DUMMY if _text_vr(element) == "UR" else _TEXT_DUMMY)
                                               if action == "dummy" else "")
        elif element.VR in ("DA", "DT", "TM") and element.value:
            kitware.replace_date_time_element(element)

    ds.walk(visit)
    if refused:
        raise Excluded(Reason.FAILED)


def _free_text_left(ds: Dataset, *, written: tuple[str, ...] = (), patient: re.Pattern | None = None) -> list[str]:
    """The paths (``Sequence[0].Keyword``; never values) of the free text the safety net would
    still remove, empty, replace or refuse in ``ds``; ``written``: top-level attributes the
    profile wrote itself (the pseudonym); ``patient``: the original's ``_patient_words``."""
    found: list[str] = []

    def visit(dataset: Dataset, prefix: str) -> None:
        for element in dataset:
            name = f"{prefix}{element.keyword or element.tag}"
            if element.VR == "SQ":
                for i, item in enumerate(element.value or ()):
                    visit(item, f"{name}[{i}].")
            elif (_free_text_action(element, dataset=dataset, top=not prefix, patient=patient)
                  and not (not prefix and element.keyword in written) and any(_texts(element.value))):
                found.append(name)

    visit(ds, "")
    return found


def _dictionary_vr(tag) -> str | None:
    """The VR the data dictionary gives a public attribute (repeating groups included), or None
    for a private tag or one the dictionary does not name."""
    if tag.is_private:
        return None
    try:
        return get_entry(tag)[0]
    except KeyError:
        return None


def _remove_unknown(ds: Dataset) -> None:
    """Remove every public element the data dictionary does not name (any depth), as private
    ones are: its meaning, so what the table would do to it, is unknown. A damaged file's
    corrupted tag lands here with the value of the attribute it was ((0010,0010) read as
    (1710,0010): the patient's name, under no action). Group lengths go too (retired; the
    writer needs none)."""

    def visit(dataset: Dataset, element) -> None:
        if not element.tag.is_private and _dictionary_vr(element.tag) is None:
            del dataset[element.tag]

    ds.walk(visit)


#: where the original can be fetched from (not in Table E.1-1): a DICOMweb or file URL names the
#: organization's server and holds the original UIDs, so they are removed (X) wherever they are
LOCATORS = frozenset({"RetrieveURL", "RetrieveURI", "StorageURL", "StoredInstanceBaseURI", "FolderAccessURI",
                      "FileAccessURI", "ContactURI"})


def _overlay(tag) -> bool:
    return 0x6000 <= tag.group <= 0x601E and tag.group % 2 == 0


def _remove_locators(ds: Dataset) -> None:
    """Remove, at any depth, where the original can be fetched from (``LOCATORS``), and what is
    left of overlay planes once the table removed their Overlay Data and Comments (X): rows,
    columns, origin, a description and a label describing an overlay no longer there (the Overlay
    Plane module without its Type 1 data, which viewers reject; its free text, unprocessed)."""

    def visit(dataset: Dataset, element) -> None:
        if element.keyword in LOCATORS or _overlay(element.tag):
            del dataset[element.tag]

    ds.walk(visit)


def _texts(value) -> list[str]:
    """The values of an element as strings, whatever its encoded VR (the bytes of an OB or UN
    value included)."""
    if value is None:
        return []
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("ascii", "replace")
    if isinstance(value, list | tuple | MultiValue):
        return [str(v).strip("\0 ") for v in value]
    return [v.strip("\0 ") for v in str(value).split("\\")]


def _map_uids(ds: Dataset, key: bytes) -> None:
    """Every UID value in the dataset (any depth) that the standard does not define becomes
    ``uid_for(key, value)``: elements encoded as UI, and UID attributes a writer encoded with
    another VR (a Study Instance UID written as LO would otherwise leave as it came), which are
    rewritten as UI."""

    def visit(dataset: Dataset, element) -> None:
        if element.VR == "UI":
            if element.value in (None, ""):
                return
            values = list(element.value) if element.VM > 1 else [element.value]
            mapped = [v if not v or _registered(str(v)) else uid_for(key, str(v)) for v in values]
            element.value = mapped if element.VM > 1 else mapped[0]
        elif _dictionary_vr(element.tag) == "UI":
            values = [v if not v or _registered(v) else uid_for(key, v) for v in _texts(element.value)]
            dataset[element.tag] = DataElement(element.tag, "UI", values if len(values) > 1 else
                                               values[0] if values else "")

    ds.walk(visit)


def _clean(ds: Dataset) -> None:
    """The table (top level, then in sequences), private tags removed, and the safety net: what
    the profile does to a dataset's attributes, before the pseudonym, UIDs and marking."""
    patient = _patient_words(ds)
    kitware.anonymize_dataset(ds, extra_anonymization_rules=None, delete_private_tags=True, base_rules_gen=rules)
    ds.remove_private_tags()
    _remove_unknown(ds)
    _remove_locators(ds)
    _clean_sequences(ds, rules())
    _safety_net(ds, patient)


def _values(ds: Dataset, prefix: str = "") -> dict[str, object]:
    """Every non-empty attribute value of ``ds`` (any depth), by path (``Keyword`` or the tag,
    ``Sequence[0].Keyword`` in items), UIDs and pixel data left out."""
    found: dict[str, object] = {}
    for element in ds:
        name = f"{prefix}{element.keyword or element.tag}"
        if element.keyword in _PIXEL_KEYWORDS or element.VR == "UI" or element.tag.group == 0x0002:
            continue
        if element.VR == "SQ":
            for i, item in enumerate(element.value or ()):
                found.update(_values(item, f"{name}[{i}]."))
            continue
        value = element.value
        if value is None or value == "" or value == b"":
            continue
        if isinstance(value, list | tuple) or element.VM > 1:
            value = tuple(str(v) for v in value)
            if not any(value):
                continue
        elif not isinstance(value, bytes):
            value = str(value)
        found[name] = value
    return found


def identity_left(ds: Dataset) -> list[str]:
    """The attributes of ``ds`` (paths as ``_values`` names them; never their values) that still
    carry what this profile removes, empties or replaces: the same table, private-tag removal and
    safety net run on a copy, and every value they would change is reported. Empty: nothing the
    profile would touch is left, so a file's claim of Patient Identity Removed = YES holds.

    What this cannot see: UIDs (a replaced UID looks like any other) and the pixels (burned-in
    text). A pseudonym in Patient's Name or ID cannot be told from a real name, so it is reported
    like one: the check under-claims, never over-claims. A dataset the profile cannot process is
    reported as ``["(not verifiable)"]``."""
    try:
        # a copy without the pixels (never looked at, and possibly large)
        cleaned = copy.deepcopy(Dataset({element.tag: element for element in ds
                                         if element.keyword not in _PIXEL_KEYWORDS}))
        cleaned.file_meta = FileMetaDataset()
        _clean(cleaned)
        before, after = _values(ds), _values(cleaned)
    except Exception:  # noqa: BLE001 - an odd file is not verified, whatever the reason
        return ["(not verifiable)"]
    return sorted(path for path, value in before.items() if after.get(path) != value)


#: De-identification Method Code Sequence's code for the Retain UIDs Option (PS3.16 CID 7050): the
#: file keeps the original's UIDs
RETAIN_UIDS_CODE = ("113110", "DCM")


def uids_retained(ds: Dataset) -> bool:
    """Whether the file says it keeps the original's UIDs (its De-identification Method Code
    Sequence names the Retain UIDs Option). A file that says nothing cannot be told apart: a UID
    this profile maps looks like any other."""
    return any((str(item.get("CodeValue", "")).strip(), str(item.get("CodingSchemeDesignator", "")).strip())
               == RETAIN_UIDS_CODE for item in ds.get("DeidentificationMethodCodeSequence") or ())


def deidentified(ds: Dataset) -> bool:
    """Whether ``ds`` (the whole file, pixel data included) is what this profile would let leave:
    nothing in it the profile would remove, empty or replace (``identity_left``), no exclusion
    (``exclusion_reason``: burned-in text said or likely, a secondary or converted image, video,
    a photograph, a document, no pixels), and it does not say it keeps the original's UIDs
    (``uids_retained``). Whether it says Patient Identity Removed = YES is the caller's check."""
    try:
        reason = exclusion_reason(ds)
    except Exception:  # noqa: BLE001 - an odd file is not verified, whatever the reason
        return False
    return reason is None and not uids_retained(ds) and not identity_left(ds)


# ----------------------------------------------------------------------------- one file

@dataclass(frozen=True)
class Output:
    data: bytes
    sop_instance_uid: str


def deidentify(ds: Dataset, *, pseudonym: str, key: bytes) -> Dataset:
    """Apply the profile to ``ds`` in place (see the module docstring) and return it.

    Raises Excluded when the instance must not leave. The pixel data element is not touched."""
    reason = exclusion_reason(ds)
    if reason:
        raise Excluded(reason)
    transfer_syntax = ds.file_meta.TransferSyntaxUID if "TransferSyntaxUID" in getattr(ds, "file_meta", {}) else None
    # group 0002 is rebuilt below: dicom-anonymizer must not see (and randomize) it
    ds.file_meta = FileMetaDataset()
    _clean(ds)
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    _map_uids(ds, key)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(transfer_syntax) if transfer_syntax else pydicom.uid.ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    return ds


# ----------------------------------------------------------------------------- the check before it leaves

#: attributes naming the patient or their exam: their values must not be found anywhere in the
#: output (the accession number is the exam's number in the organization's records)
_PATIENT_KEYWORDS = ("PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName",
                     "PatientMotherBirthName", "MedicalRecordLocator", "AccessionNumber")
#: the shortest name or ID looked for (shorter ones match by chance: an ID "0101" in a dummy date)
_SHORTEST = 6
#: the shortest UID looked for
_SHORTEST_UID = 10
#: file meta UIDs that name no patient and may be written again as they came: the transfer syntax
#: (kept) and the implementation class (ours, which may have written the original too)
_META_KEPT = (0x00020010, 0x00020012)
_DUMMIES = ("ANONYMIZED", "00010101010101.000000+0000", "000000.00", "000Y", "http://anonymized.invalid")
_DIGITS_AND_DOTS = re.compile(rf"[0-9.]{{{_SHORTEST_UID},}}")
_DIGIT_RUNS = re.compile(r"\d+")
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"})
#: C0 controls but tab, line feed, form feed, carriage return and escape
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")


@dataclass(frozen=True)
class _Identity:
    uids: frozenset[str]
    texts: frozenset[str]     # names and IDs, found anywhere in a text
    numbers: frozenset[str]   # IDs of digits only, found as a whole number


def _identity_of(ds: Dataset) -> _Identity:
    """What identifies the original: its UIDs that the standard does not define (any depth,
    file meta included, whatever VR they were written with) and its patient's names and IDs
    (whole values and name components)."""
    uids: set[str] = set()
    texts: set[str] = set()

    def visit(dataset: Dataset, element) -> None:
        if element.tag in _META_KEPT or element.VR == "SQ":
            return
        if element.VR == "UI" or _dictionary_vr(element.tag) == "UI":
            uids.update(v for v in _texts(element.value) if len(v) >= _SHORTEST_UID and not _registered(v))
        elif element.keyword in _PATIENT_KEYWORDS:
            for value in _texts(element.value):
                texts.add(value)
                texts.update(re.split(r"[\^=,]+", value))

    ds.walk(visit)
    if getattr(ds, "file_meta", None) is not None:
        ds.file_meta.walk(visit)
    kept = {t for t in (t.strip() for t in texts)
            if len(t) >= _SHORTEST and t.strip("0.") and not any(t in dummy for dummy in _DUMMIES)}
    return _Identity(uids=frozenset(uids), texts=frozenset(t for t in kept if not t.isdigit()),
                     numbers=frozenset(t for t in kept if t.isdigit()))


def _left_from(identity: _Identity, ds: Dataset) -> bool:
    """Whether the de-identified dataset (any depth, file meta included; compressed pixel data
    for names and IDs, ``_in_codestream``) still holds anything of ``identity`` in any value (a
    damaged file's value read into another attribute, a kept attribute a writer filled with the
    patient's ID), or a value misread from a damaged file: a text with control characters other
    than tab, line and page breaks and the escapes of ISO 2022 character sets (a corrupted length
    swallows the attributes after it, headers and values together, into one value the table does
    not act on), where what the original held cannot be known. Either way it must not leave."""
    found: list[int] = []

    def visit(dataset: Dataset, element) -> None:
        if element.VR == "SQ" or element.keyword in _PIXEL_KEYWORDS:
            return
        if isinstance(element.value, bytes | bytearray):
            values = [bytes(element.value).decode("latin-1")]
        else:
            values = _texts(element.value)
            if element.VR in _TEXT_VRS and any(_CONTROL.search(v) for v in values):
                found.append(element.tag)
                return
        textual = element.VR in _TEXT_VRS
        for value in values:
            # names and IDs in text (not in a UID or a number: a replaced UID's 39 digits hold a
            # 6-digit ID by chance in one file of a few thousand); an ID of digits only as a whole
            # number, not inside a longer one (a slice position, a count); in bytes (OB, UN)
            # names and IDs with letters only (digits turn up in binary values by chance)
            if (textual or element.VR in ("OB", "UN")) and any(text in value for text in identity.texts):
                found.append(element.tag)
            if textual and identity.numbers.intersection(_DIGIT_RUNS.findall(value)):
                found.append(element.tag)
            for run in _DIGITS_AND_DOTS.findall(value):
                if run in identity.uids or (len(run) > 64 and any(uid in run for uid in identity.uids)):
                    found.append(element.tag)

    ds.walk(visit)
    ds.file_meta.walk(visit)
    return bool(found) or _in_codestream(identity, ds)


def _in_codestream(identity: _Identity, ds: Dataset) -> bool:
    """Whether compressed pixel data holds the patient's name or ID as text: a JPEG comment or
    application segment, a JPEG 2000 comment, written by the device or a converter (the profile
    does not change pixel data). Compressed data looks random, so a name or ID of six characters
    or more is not found there by chance; RLE (runs of raw values, and no room for text) is not
    searched."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if "PixelData" not in ds or syntax is None or not UID(syntax).is_encapsulated or syntax == pydicom.uid.RLELossless:
        return False
    data = ds.PixelData
    for text in identity.texts | identity.numbers:
        for encoded in {text.encode("utf-8"), text.encode("latin-1", "ignore")}:
            if encoded in data:
                return True
    return False


def deidentify_file(source: IO[bytes] | bytes, *, pseudonym: str, key: bytes) -> Output:
    """Read one stored original (bytes or a binary file), de-identify it, and return the new
    file's bytes. Raises Excluded (with a Reason) when it must not or cannot be exported."""
    fileobj = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        # a deflated data set inflated within bounds (pydicom inflates it whole, however large)
        ds = dicom.read_whole(fileobj, force=True)
        ds.SOPInstanceUID  # noqa: B018 - a file without one is not an instance we can export
        ds.SOPClassUID  # noqa: B018
    except Exception as exc:  # anything unreadable is a per-file reason, not a crash
        raise Excluded(Reason.UNREADABLE) from exc
    out = io.BytesIO()
    try:
        if reason := exclusion_reason(ds):
            raise Excluded(reason)
        identity = _identity_of(ds)
        patient = _patient_words(ds)
        deidentify(ds, pseudonym=pseudonym, key=key)
        # anything of the original, or free text the safety net should have taken (a kept value
        # naming the patient included)
        left = _left_from(identity, ds) or bool(_free_text_left(ds, written=("PatientName", "PatientID"),
                                                                patient=patient))
        ds.save_as(out, enforce_file_format=True)
    except Excluded:
        raise
    except Exception as exc:  # e.g. a VR the table's dummy values do not cover
        raise Excluded(Reason.FAILED) from exc
    if left:  # the profile ran, yet something of the original is still there: refused
        raise Excluded(Reason.FAILED)
    return Output(data=out.getvalue(), sop_instance_uid=str(ds.SOPInstanceUID))
