"""factory_boy factories. tests/test_scoping.py finds the factory of every organization-scoped
model here by its model, so a new scoped model needs a factory in this module."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from apps.accounts.models import Invitation, SSOConfig, User
from apps.audit.models import AuditEvent
from apps.cases.models import Attachment, BoardSession, Case, CaseNote, Patient
from apps.deid.models import DeidExport, DeidExportFile
from apps.imaging.models import IngestJob, Instance, Series, Study, Upload
from apps.organizations.models import Membership, Organization, Role
from apps.renditions.models import Rendition, RenditionFile
from apps.sharing.models import Grant, OriginalRequest, ShareLink, SharingPolicy

TEST_PASSWORD = "correct-horse-battery-staple"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("email",)
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.org")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", TEST_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Test Hospital {n}")
    slug = factory.Sequence(lambda n: f"test-hospital-{n}")


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.CLINICIAN


class AuditEventFactory(DjangoModelFactory):
    class Meta:
        model = AuditEvent

    organization = factory.SubFactory(OrganizationFactory)
    action = "test.event"


class PatientFactory(DjangoModelFactory):
    """Generated, fictional patients only."""

    class Meta:
        model = Patient

    organization = factory.SubFactory(OrganizationFactory)
    mrn = factory.Sequence(lambda n: f"MRN{n:06d}")
    name = factory.Faker("name")
    birth_date = factory.Faker("date_of_birth", minimum_age=1, maximum_age=95)


class CaseFactory(DjangoModelFactory):
    class Meta:
        model = Case

    organization = factory.SubFactory(OrganizationFactory)
    patient = factory.SubFactory(PatientFactory, organization=factory.SelfAttribute("..organization"))
    title = factory.Sequence(lambda n: f"Case {n}")
    referring_question = "Second opinion on a pulmonary nodule."
    service_line = "Oncology"


class CaseNoteFactory(DjangoModelFactory):
    class Meta:
        model = CaseNote

    organization = factory.SubFactory(OrganizationFactory)
    case = factory.SubFactory(CaseFactory, organization=factory.SelfAttribute("..organization"))
    body = factory.Sequence(lambda n: f"Note {n}: no change since the prior study.")


class AttachmentFactory(DjangoModelFactory):
    """A generated PDF attached to a case, stored encrypted through put_blob."""

    class Meta:
        model = Attachment

    organization = factory.SubFactory(OrganizationFactory)
    case = factory.SubFactory(CaseFactory, organization=factory.SelfAttribute("..organization"))
    filename = factory.Sequence(lambda n: f"report-{n}.pdf")
    blob = factory.LazyAttribute(lambda o: _test_blob(b"%PDF-1.4\n% generated test report " + o.filename.encode()))
    size = factory.LazyAttribute(lambda o: o.blob.size)


class BoardSessionFactory(DjangoModelFactory):
    class Meta:
        model = BoardSession

    organization = factory.SubFactory(OrganizationFactory)
    host = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Tumor board {n}")
    meeting_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))


class GrantFactory(DjangoModelFactory):
    class Meta:
        model = Grant

    organization = factory.SubFactory(OrganizationFactory)
    case = factory.SubFactory(CaseFactory, organization=factory.SelfAttribute("..organization"))
    grantee = factory.SubFactory(UserFactory)
    permissions = factory.LazyFunction(lambda: ["view"])
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=48))


class ShareLinkFactory(DjangoModelFactory):
    """A link onto a grant; the raw token is not kept (tests that open links use
    apps.sharing.services.share_link_create, which returns it)."""

    class Meta:
        model = ShareLink

    organization = factory.SubFactory(OrganizationFactory)
    grant = factory.SubFactory(GrantFactory, organization=factory.SelfAttribute("..organization"))
    token_hash = factory.Sequence(lambda n: f"{n:064x}")


class SharingPolicyFactory(DjangoModelFactory):
    class Meta:
        model = SharingPolicy
        django_get_or_create = ("organization",)

    organization = factory.SubFactory(OrganizationFactory)


class OriginalRequestFactory(DjangoModelFactory):
    class Meta:
        model = OriginalRequest

    organization = factory.SubFactory(OrganizationFactory)
    grant = factory.SubFactory(GrantFactory, organization=factory.SelfAttribute("..organization"))
    case = factory.SelfAttribute("grant.case")
    requested_by = factory.SelfAttribute("grant.grantee")
    reason = "Need the full-resolution series to measure the nodule."


class StudyFactory(DjangoModelFactory):
    """A study index row (no stored bytes); for ingested studies use apps.imaging.services."""

    class Meta:
        model = Study

    organization = factory.SubFactory(OrganizationFactory)
    case = factory.SubFactory(CaseFactory, organization=factory.SelfAttribute("..organization"))
    study_instance_uid = factory.Sequence(lambda n: f"1.2.826.0.1.3680043.10.1.{n}")
    study_description = "CT chest"
    modalities = "CT"
    state = "ready"
    #: the images' patient ID: its case's patient's MRN (a patient is given only those:
    #: ``apps.sharing.policy.held_back_from_patient``); none for a study in no case
    patient_id = factory.LazyAttribute(lambda o: o.case.patient.mrn if o.case is not None else "")


class SeriesFactory(DjangoModelFactory):
    class Meta:
        model = Series

    organization = factory.SubFactory(OrganizationFactory)
    study = factory.SubFactory(StudyFactory, organization=factory.SelfAttribute("..organization"))
    series_instance_uid = factory.Sequence(lambda n: f"1.2.826.0.1.3680043.10.2.{n}")
    series_number = 1
    modality = "CT"


class InstanceFactory(DjangoModelFactory):
    """An instance whose blob holds a few generated bytes (encrypted through put_blob)."""

    class Meta:
        model = Instance

    organization = factory.SubFactory(OrganizationFactory)
    series = factory.SubFactory(SeriesFactory, organization=factory.SelfAttribute("..organization"))
    study = factory.SelfAttribute("series.study")
    sop_instance_uid = factory.Sequence(lambda n: f"1.2.826.0.1.3680043.10.3.{n}")
    sop_class_uid = "1.2.840.10008.5.1.4.1.1.2"
    blob = factory.LazyAttribute(lambda o: _test_blob(o.sop_instance_uid.encode()))
    size = factory.LazyAttribute(lambda o: o.blob.size)
    sha256 = factory.LazyAttribute(lambda o: o.blob.sha256)


def _test_blob(data: bytes):
    import io

    from apps.imaging.blobs import put_blob

    return put_blob(io.BytesIO(data))


class UploadFactory(DjangoModelFactory):
    class Meta:
        model = Upload

    organization = factory.SubFactory(OrganizationFactory)
    length = 1024
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=24))


class IngestJobFactory(DjangoModelFactory):
    class Meta:
        model = IngestJob

    organization = factory.SubFactory(OrganizationFactory)


class InvitationFactory(DjangoModelFactory):
    """An invitation row; the raw token is not kept (tests that open invitations use
    apps.accounts.services.invitation_create, which returns it)."""

    class Meta:
        model = Invitation

    organization = factory.SubFactory(OrganizationFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@elsewhere.example")
    role = Role.EXTERNAL_CONSULTANT
    token_hash = factory.Sequence(lambda n: f"{n:064x}")
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=72))


class SSOConfigFactory(DjangoModelFactory):
    class Meta:
        model = SSOConfig
        django_get_or_create = ("organization",)

    organization = factory.SubFactory(OrganizationFactory)
    issuer = "https://login.example.org/realms/staff"
    client_id = "lightbox"
    allowed_domains = "example.org"



class RenditionFactory(DjangoModelFactory):
    """A study's rendition summary row (no files)."""

    class Meta:
        model = Rendition
        django_get_or_create = ("study", "kind")

    organization = factory.SubFactory(OrganizationFactory)
    study = factory.SubFactory(StudyFactory, organization=factory.SelfAttribute("..organization"))
    kind = "preview"
    label = "preview_lossy"
    status = "ready"


class RenditionFileFactory(DjangoModelFactory):
    """One instance's original, recorded as a rendition file (points at the instance's blob)."""

    class Meta:
        model = RenditionFile

    organization = factory.SubFactory(OrganizationFactory)
    instance = factory.SubFactory(InstanceFactory, organization=factory.SelfAttribute("..organization"))
    study = factory.SelfAttribute("instance.study")
    rendition = factory.SubFactory(RenditionFactory, organization=factory.SelfAttribute("..organization"),
                                   study=factory.SelfAttribute("..study"), kind="original",
                                   label="diagnostic_original")
    kind = "original"
    label = "diagnostic_original"
    status = "ready"
    blob = factory.SelfAttribute("instance.blob")
    sha256 = factory.SelfAttribute("instance.sha256")
    bytes = factory.SelfAttribute("instance.size")
    original_bytes = factory.SelfAttribute("instance.size")


class DeidExportFactory(DjangoModelFactory):
    """A finished de-identified export row with no files (apps.deid.services makes real ones)."""

    class Meta:
        model = DeidExport

    organization = factory.SubFactory(OrganizationFactory)
    study = factory.SubFactory(StudyFactory, organization=factory.SelfAttribute("..organization"))
    pseudonym = "TEST-PSEUDONYM"
    state = "ready"


class DeidExportFileFactory(DjangoModelFactory):
    """An excluded instance of a de-identified export (no stored output)."""

    class Meta:
        model = DeidExportFile

    organization = factory.SubFactory(OrganizationFactory)
    export = factory.SubFactory(DeidExportFactory, organization=factory.SelfAttribute("..organization"))
    instance = factory.SubFactory(InstanceFactory, organization=factory.SelfAttribute("..organization"),
                                  series__study=factory.SelfAttribute("...export.study"))
    outcome = "excluded"
    reason = "burned_in"

def member(organization: Organization, role: str = Role.CLINICIAN, **user_kwargs) -> User:
    """A user with an active membership of ``role`` in ``organization``."""
    user = UserFactory(**user_kwargs)
    MembershipFactory(user=user, organization=organization, role=role)
    return user


#: the ways a grant stops giving anything (``grant_kill``)
DEAD_GRANT_STATES = ("expired", "revoked", "not_started", "case_closed", "user_inactive")


def grant_kill(grant: Grant, *, user: User, state: str) -> None:
    """Make ``grant`` dead in one of ``DEAD_GRANT_STATES`` (``user``: its recipient)."""
    now = timezone.now()
    if state == "expired":
        grant.expires_at = now - timedelta(seconds=1)
    elif state == "revoked":
        grant.revoked_at = now
    elif state == "not_started":
        grant.starts_at = now + timedelta(hours=1)
    elif state == "case_closed":
        grant.case.status = "closed"
        grant.case.save()
    elif state == "user_inactive":
        user.is_active = False
        user.save()
    else:
        raise ValueError(state)
    grant.save()


def open_anonymous_link(client, raw: str, *, passcode: str | None = None):
    """Open an anonymous share link as its holder does: the POST of the confirmation page that a
    GET of the link shows (a GET uses nothing, so mail gateways' pre-fetches cannot use it up),
    with the link's ``passcode`` when it asks for one. Returns the response (a redirect to what
    was shared once opened)."""
    from django.urls import reverse

    return client.post(reverse("sharing:link_open", kwargs={"token": raw}),
                       {"value": passcode} if passcode is not None else {})


#: the passcode of the anonymous links tests make with the original (``anonymous_original_terms``)
LINK_PASSCODE = "blue-kettle-42"


def anonymous_original_terms(organization) -> dict:
    """Let ``organization``'s anonymous links carry the original DICOM (its sharing policy's
    ``anonymous_allow_original``, off by default) and return the link's terms such a share needs
    (a passcode, ``LINK_PASSCODE``), to pass to ``share_create``."""
    from apps.sharing.models import SharingPolicy

    SharingPolicy.objects.update_or_create(organization=organization, defaults={"anonymous_allow_original": True})
    return {"second_factor": "passcode", "passcode": LINK_PASSCODE}


def audit_write_fails(monkeypatch, module, action: str) -> None:
    """The audit write of ``action`` through ``module.record`` fails (the trail's store refuses
    it); every other action is recorded as usual."""
    record = module.record

    def failing(**kwargs):
        if kwargs["action"] == action:
            raise RuntimeError("audit store unavailable")
        return record(**kwargs)

    monkeypatch.setattr(module, "record", failing)


def working_in(client, organization) -> None:
    """The test client's session works in ``organization`` (the active organization of someone
    in several), as the organization switcher leaves it."""
    from apps.organizations.services import ACTIVE_ORG_SESSION_KEY

    session = client.session
    session[ACTIVE_ORG_SESSION_KEY] = str(organization.public_id)
    session.save()


def blob_alter(blob, *, offset: int = 40) -> None:
    """Alter one byte of a stored blob's encrypted bytes in place (the test storage is a folder),
    as a tampered or corrupted file would be: reading it fails its integrity check
    (``cryptography.exceptions.InvalidTag`` from ``apps.imaging.blobs.open_blob``)."""
    from django.core.files.storage import default_storage

    with open(default_storage.path(blob.storage_name), "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 1]))


def anonymous_preview_holder(study, owner, *, download_limit: int = 5, **terms):
    """A browser (test Client) that opened an anonymous link onto a view-and-preview share of
    ``study``'s case (the organization's anonymous links switched on; ``terms``: the link's, e.g. a
    passcode)."""
    from django.test import Client

    from apps.sharing import services as sharing
    from apps.sharing.models import Grant
    from apps.sharing.usecases import RecipientKind, UseCase

    org = study.organization
    org.anonymous_links_enabled = True
    org.save()
    grant, _link, raw = sharing.share_create(case=study.case, by=owner, use_case=UseCase.CUSTOM,
                                             recipient_kind=RecipientKind.ANONYMOUS,
                                             download_limit=download_limit, **terms)
    Grant.objects.filter(pk=grant.pk).update(permissions=["view", "download_preview"], renditions=["preview"])
    holder = Client()
    assert open_anonymous_link(holder, raw, passcode=terms.get("passcode")).status_code == 302
    return holder
