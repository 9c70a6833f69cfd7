"""The cases part of the demo (called from apps.core.demo.seed): the Northwind chest CT case with
its clinical context and notes, a second case, and a scheduled tumor board; a third case that shows,
on purpose and saying so, the case page's warning of images whose patient ID is not the case's MRN
(``ID_CHECK_CASE``); Harbor Valley's case. Fictional people only; idempotent (get_or_create on
natural keys)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.utils import timezone

from apps.accounts.models import User
from apps.cases.models import BoardSession, BoardState, Case, CaseNote, NoteKind, Patient, mrn_key
from apps.organizations.models import Organization

#: the same keys the imaging demo uses for the case its demo study is attached to
DEMO_MRN, DEMO_CASE_TITLE = "DEMO-0001", "Chest CT - second opinion"

CASES = [
    {
        "mrn": DEMO_MRN, "name": "Alex Demo", "birth_date": date(1961, 4, 12), "title": DEMO_CASE_TITLE,
        "referring_question": "8 mm nodule in the right upper lobe on the outside CT. Has it grown since the "
                              "prior study? Follow-up imaging or biopsy?",
        "referred_by": "Dr. Jordan Hale, Riverside Community Hospital (pulmonology)",
        "service_line": "Thoracic oncology", "days_ago": 3,
        "notes": [
            ("clinician", NoteKind.NOTE, "Outside CT received on disc and uploaded. Patient is a former smoker "
                                         "(30 pack-years). Prior CT from 2024 requested."),
            ("radiologist", NoteKind.REPORT, "Preliminary read: 8 x 7 mm solid nodule, right upper lobe, smooth "
                                             "margins. No lymphadenopathy. Comparison with the prior study pending."),
            ("coordinator", NoteKind.NOTE, "Added to the thoracic tumor board."),
        ],
    },
    {
        "mrn": "DEMO-0002", "name": "Robin Sample", "birth_date": date(1974, 9, 30),
        "title": "Brain MR - tumor board review",
        "referring_question": "Enhancing lesion, left frontal lobe, after resection. Recurrence or treatment "
                              "effect?",
        "referred_by": "Dr. Casey Clinician, Northwind neuro-oncology clinic",
        "service_line": "Neuro-oncology", "days_ago": 1,
        "notes": [
            ("clinician", NoteKind.NOTE, "Post-operative MR at 3 months. Steroids tapered last week."),
        ],
    },
]

BOARD_TITLE = "Thoracic tumor board"

#: the one demo case whose images are another patient's, on purpose: pydicom's NM bone scan as
#: pydicom has it (patient ID 8NM1), so the case page's patient-ID warning can be seen. Every other
#: demo study carries its case's MRN (``apps.imaging.demo``); the title and the question say so,
#: so the warning reads as intended. Not on the tumor board.
ID_CHECK_CASE = {
    "mrn": "DEMO-0003", "name": "Jamie Placeholder", "birth_date": date(1969, 11, 5),
    "title": "Bone scan - patient ID check (demo: images of another patient)",
    "referring_question": "Demo of the patient-ID check: the bone scan on this case carries another "
                          "patient's ID (8NM1), not this patient's MRN, so the case page warns of it on "
                          "purpose. Every other demo case's images carry its MRN.",
    "referred_by": "Lightbox demo data",
    "service_line": "Nuclear medicine", "days_ago": 5,
    "notes": [
        ("clinician", NoteKind.NOTE, "Deliberate mismatch for the demo: check the patient ID before "
                                     "reading or sharing these images."),
    ],
}


def _next_thursday_4pm() -> datetime:
    today = timezone.localdate()
    days = (3 - today.weekday()) % 7 or 7
    return timezone.make_aware(datetime.combine(today + timedelta(days=days), time(16, 0)))


#: Harbor Valley's case, written in Spanish as its Spanish-speaking clinician would (case text is
#: what people type, never translated); a CT slice of pydicom's test data goes on it
HARBOR_CASE = {
    "mrn": "HV-0001", "name": "Sam Ficticio", "birth_date": date(1958, 2, 3),
    "title": "TC de tórax - control de nódulo",
    "referring_question": "Nódulo de 6 mm en el lóbulo inferior izquierdo en un TC de 2025. ¿Estable, "
                          "o conviene biopsia?",
    "referred_by": "Dra. Lucía Ejemplo, Centro de Salud Puerto (medicina de familia)",
    "service_line": "Neumología", "days_ago": 2,
    "notes": [
        ("clinician", NoteKind.NOTE, "TC de control subido. Paciente asintomático; sin antecedentes de "
                                     "tabaquismo."),
    ],
}


def _seed_case(org: Organization, spec: dict, user) -> Case:
    clinician = user("clinician")
    patient, _ = Patient.objects.get_or_create(
        organization=org, mrn_key=mrn_key(spec["mrn"]),
        defaults={"mrn": spec["mrn"], "name": spec["name"], "birth_date": spec["birth_date"]})
    case, _ = Case.objects.get_or_create(
        organization=org, title=spec["title"],
        defaults={"patient": patient, "created_by": clinician, "responsible_clinician": clinician})
    # the imaging demo may have made the case first, with fewer details: fill in what is empty
    changed = []
    for name in ("referring_question", "referred_by", "service_line"):
        if not getattr(case, name):
            setattr(case, name, spec[name])
            changed.append(name)
    for name, value in (("responsible_clinician", clinician), ("created_by", clinician)):
        if getattr(case, f"{name}_id") is None:
            setattr(case, name, value)
            changed.append(name)
    if case.episode_start is None:
        case.episode_start = timezone.localdate() - timedelta(days=spec["days_ago"])
        changed.append("episode_start")
    if changed:
        case.save(update_fields=[*changed, "updated_at"])
    for local, kind, body in spec["notes"]:
        CaseNote.objects.get_or_create(organization=org, case=case, author=user(local), body=body,
                                       defaults={"kind": kind})
    return case


def _users_of(domain: str):
    def user(local: str) -> User:
        return User.objects.get(email=f"{local}@{domain}")

    return user


def seed_harbor_case(org: Organization, domain: str) -> Case:
    """Harbor Valley's one case (HARBOR_CASE), so that its Spanish-speaking demo clinician sees one."""
    return _seed_case(org, HARBOR_CASE, _users_of(domain))


def seed_cases(org: Organization, domain: str) -> None:
    user = _users_of(domain)
    clinician, radiologist = user("clinician"), user("radiologist")
    cases = [_seed_case(org, spec, user) for spec in CASES]

    board, created = BoardSession.objects.get_or_create(
        organization=org, title=BOARD_TITLE,
        defaults={"host": radiologist, "meeting_at": _next_thursday_4pm(), "review_days": 7,
                  "state": BoardState.SCHEDULED})
    if created:
        board.cases.set(cases)
        board.participants.set([user("consultant"), clinician])
    _seed_case(org, ID_CHECK_CASE, user)
