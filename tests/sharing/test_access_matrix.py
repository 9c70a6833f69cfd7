"""The access matrix, generated: actor x grant state x (action | endpoint).

1. ``test_policy_matrix``: ``policy.can`` for every actor, grant state and case action, on the
   case and on a study of it, against a table written here by hand (not computed from the
   policy).
2. ``test_endpoint_matrix``: every URL of a Lightbox app that serves case or study data, found
   in the URL configuration (a keyword ``case_id``/``study_id``, or ``<model>_id`` of a model
   with a ``case`` or ``study`` foreign key), fetched by every actor in every grant state. The
   action an endpoint needs is what it declares (``@policy.serves`` or a view class's
   ``lightbox_action``), else what it asks ``policy.require`` while serving the owner, else
   VIEW_CASE. Link holders are expected in only where the view is ``@policy.link_aware``.
   Other apps' endpoints join this test by being in the URL configuration; nothing here lists
   them.
3. ``test_preview_only_recipient_never_gets_original_bytes``: every GET-able URL with object
   keywords, as a preview-only recipient and as a preview-only link holder, never returns the
   bytes of a stored original.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db import models
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from apps.cases.models import Case
from apps.organizations.models import Role
from apps.sharing import policy, services
from apps.sharing.models import Grant
from apps.sharing.policy import Action
from apps.sharing.usecases import RecipientKind, UseCase
from tests import factories
from tests.factories import CaseFactory, UserFactory, member
from tests.test_scoping import SCOPED_MODELS, _factory_for

pytestmark = pytest.mark.django_db

ACTORS = ["owner", "other_member", "recipient", "other_user", "other_tenant", "anonymous", "link_holder"]
STATES = ["active", "expired", "revoked", "over_limit", "case_closed"]
CASE_ACTIONS = [Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_PREVIEW, Action.DOWNLOAD_ORIGINAL,
                Action.SHARE_CASE, Action.MANAGE_CASE, Action.MANAGE_GRANT, Action.VIEW_ORG_DATA,
                Action.EXPORT_DEIDENTIFIED, Action.DELETE_STUDY]

#: the recipient's and the link's grant: view and preview downloads, no originals
GRANT_PERMISSIONS = ["view", "download_preview"]
#: by hand: what each actor may do in each state
OWNER = {Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_PREVIEW, Action.DOWNLOAD_ORIGINAL,
         Action.SHARE_CASE, Action.MANAGE_CASE, Action.MANAGE_GRANT, Action.VIEW_ORG_DATA,
         Action.EXPORT_DEIDENTIFIED, Action.UPLOAD_STUDY,
         Action.VIEW_PATIENT_IDENTITY}  # staff (a clinician); never through a grant
# UPLOAD_STUDY is for the endpoints that declare it (attaching a study to a case, which the owner's
# role may do); it is not in CASE_ACTIONS: on a closed case nobody holds it, staff neither.
# DELETE_STUDY is held by no actor here: the owner is a clinician (deletion is for radiologists
# and org admins, tests/imaging/test_delete.py) and no grant permission gives it
GRANTED = {Action.VIEW_CASE, Action.VIEW_IMAGES, Action.DOWNLOAD_PREVIEW}


def expected_actions(actor: str, state: str) -> set[Action]:
    if actor == "owner":
        return OWNER  # staff rights do not hang on grants; a closed case stays readable to them
    if actor in ("recipient", "link_holder"):
        # the named recipient of a live preview-only grant may ask for its original (a download
        # limit used up does not end the grant); never a link holder, never staff
        asks = {Action.REQUEST_ORIGINAL} if actor == "recipient" else set()
        if state == "active":
            return GRANTED | asks
        if state == "over_limit":
            return (GRANTED - {Action.DOWNLOAD_PREVIEW, Action.DOWNLOAD_ORIGINAL}) | asks
    return set()


@dataclass
class World:
    org: object
    case: Case
    study: object
    owner: object
    recipient: object
    grant: Grant
    link_grant: Grant
    link_raw: str
    actors: dict[str, object] = field(default_factory=dict)
    marker: bytes = b""


@pytest.fixture
def world(org_a, org_b) -> World:
    org_a.anonymous_links_enabled = True
    org_a.save()
    owner = member(org_a, Role.CLINICIAN, email="owner@alpha.example")
    case = CaseFactory(organization=org_a, created_by=owner, responsible_clinician=owner)
    study = factories.StudyFactory(organization=org_a, case=case)
    recipient = member(org_a, Role.EXTERNAL_CONSULTANT, email="recipient@alpha.example")
    grant = services.grant_create(case=case, grantee=recipient, permissions=GRANT_PERMISSIONS, by=owner,
                                  renditions=["preview"], download_limit=2,
                                  expires_at=timezone.now() + timedelta(hours=24))
    link_grant, _link, raw = services.share_create(case=case, by=owner, use_case=UseCase.CUSTOM,
                                                   recipient_kind=RecipientKind.ANONYMOUS, download_limit=2)
    Grant.objects.filter(pk=link_grant.pk).update(permissions=GRANT_PERMISSIONS, renditions=["preview"])
    link_grant.refresh_from_db()
    actors = {
        "owner": owner,
        "other_member": member(org_a, Role.EXTERNAL_CONSULTANT, email="other-member@alpha.example"),
        "recipient": recipient,
        "other_user": UserFactory(email="nobody@example.org"),
        "other_tenant": member(org_b, Role.CLINICIAN, email="clinician@beta.example"),
        "anonymous": None,
    }
    return World(org=org_a, case=case, study=study, owner=owner, recipient=recipient, grant=grant,
                 link_grant=link_grant, link_raw=raw, actors=actors)


def _clients(world: World) -> dict[str, Client]:
    clients = {}
    for name, user in world.actors.items():
        clients[name] = Client()
        if user is not None:
            clients[name].force_login(user)
    holder = Client()
    assert factories.open_anonymous_link(holder, world.link_raw).status_code == 302
    clients["link_holder"] = holder
    return clients


def _link_holder_actor(client: Client) -> policy.LinkHolder:
    return policy.LinkHolder(link_ids=tuple(client.session[policy.LINK_SESSION_KEY]))


def apply_state(world: World, state: str) -> None:
    grants = [world.grant, world.link_grant]
    ids = [g.pk for g in grants]
    if state == "expired":
        Grant.objects.filter(pk__in=ids).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif state == "revoked":
        services.grants_revoke(grants=grants, by=world.owner, reason="matrix")
    elif state == "over_limit":
        Grant.objects.filter(pk__in=ids).update(download_count=2)
    elif state == "case_closed":
        Case.objects.filter(pk=world.case.pk).update(status="closed")
    world.case.refresh_from_db()
    world.study.refresh_from_db()


# ----------------------------------------------------------------------------- 1. policy

@pytest.mark.parametrize("state", STATES)
def test_policy_matrix(world, state):
    clients = _clients(world)
    holder = _link_holder_actor(clients["link_holder"])
    apply_state(world, state)
    actors = {**world.actors, "link_holder": holder}
    wrong = []
    for actor_name, actor in actors.items():
        expected = expected_actions(actor_name, state)
        for obj in (world.case, world.study):
            for action in CASE_ACTIONS:
                got = policy.can(actor if actor is not None else _Anon(), action, obj)
                if got is not (action in expected):
                    wrong.append((actor_name, type(obj).__name__, str(action), got))
    assert not wrong, f"state {state}: (actor, object, action, got) differ from the table: {wrong}"


class _Anon:
    is_authenticated = False
    is_active = False
    pk = None


# ----------------------------------------------------------------------------- 2. endpoints

def _walk(patterns, prefix=()):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, (*prefix, p.namespace) if p.namespace else prefix)
        elif isinstance(p, URLPattern):
            yield p, ":".join((*prefix, p.name)) if p.name else None


def _model_for_kwarg(kwarg: str):
    name = kwarg.removesuffix("_id")
    return next((m for m in SCOPED_MODELS if m._meta.model_name == name), None)


def _has_fk(model, name: str) -> bool:
    try:
        return isinstance(model._meta.get_field(name), models.ForeignKey)
    except Exception:
        return False


def _serves_case_data(kwargs: set[str]) -> bool:
    for k in kwargs:
        model = _model_for_kwarg(k)
        if model is None:
            continue
        if model._meta.model_name in ("case", "study") or _has_fk(model, "case") or _has_fk(model, "study"):
            return True
    return False


def _app_urls(only_case_data: bool):
    found = []
    for pattern, name in _walk(get_resolver().url_patterns):
        callback = pattern.callback
        cls = getattr(callback, "cls", None)
        module = getattr(cls, "__module__", None) or callback.__module__
        if not module.startswith("apps.") or not name:
            continue
        kwargs = set(pattern.pattern.regex.groupindex) - {"format", "token"}
        if not kwargs or (only_case_data and not _serves_case_data(kwargs)):
            continue
        declared = getattr(callback, "lightbox_action", None) or getattr(cls, "lightbox_action", None)
        link_aware = bool(getattr(callback, "lightbox_link_aware", False))
        found.append(pytest.param(name, tuple(sorted(kwargs)), declared, link_aware, id=name))
    return found


CASE_DATA_URLS = _app_urls(only_case_data=True)
ALL_OBJECT_URLS = _app_urls(only_case_data=False)


def test_discovery_finds_case_endpoints_of_every_app():
    names = {p.values[0] for p in CASE_DATA_URLS}
    assert {"sharing:shared_case", "sharing:case_share", "grant-detail"} <= names
    assert any(n.startswith("cases:") for n in names), names


def _object_for(kwarg: str, world: World):
    model = _model_for_kwarg(kwarg)
    if model is None:
        raise AssertionError(f"URL keyword {kwarg} names no organization-scoped model")
    if model is Case:
        return world.case
    if model._meta.model_name == "study":
        return world.study
    if model is Grant:
        return world.grant
    from apps.organizations.models import Organization

    if model is Organization:
        return world.org
    values = {"organization": world.org, "case": world.case, "study": world.study, "grant": world.grant}
    kwargs = {k: v for k, v in values.items() if _has_fk(model, k)}
    lookup = model._default_manager._queryset_class.org_lookup
    if lookup not in kwargs and "__" not in lookup:
        kwargs[lookup] = world.org
    if model._meta.model_name == "instance" or _has_fk(model, "series"):
        kwargs.pop("series", None)
        if _has_fk(model, "series"):
            kwargs["series"] = factories.SeriesFactory(organization=world.org, study=world.study)
    return _factory_for(model)(**kwargs)


def _is_login_redirect(response) -> bool:
    return response.status_code in (301, 302, 303) and "/accounts/login/" in response.get("Location", "")


def _outcome(response) -> str:
    if response.status_code in (401, 403, 404, 410) or _is_login_redirect(response):
        return "deny"
    if 200 <= response.status_code < 400:
        return "allow"
    return f"error {response.status_code}"


class _RequireSpy:
    def __init__(self, monkeypatch):
        self.actions: set[Action] = set()
        real = policy.require

        def spy(actor, action, obj, **kwargs):
            self.actions.add(Action(action))
            return real(actor, action, obj, **kwargs)

        monkeypatch.setattr(policy, "require", spy)


class _Rollback(Exception):
    pass


@pytest.mark.parametrize(("name", "kwargs", "declared", "link_aware"), CASE_DATA_URLS)
def test_endpoint_matrix(world, name, kwargs, declared, link_aware, monkeypatch):
    """One world per endpoint; each grant state is applied inside a savepoint and rolled back,
    so every state starts from the same active share."""
    from django.db import transaction

    url = reverse(name, kwargs={k: _object_for(k, world).public_id for k in kwargs})
    clients = _clients(world)
    spy = _RequireSpy(monkeypatch)
    wrong = []
    for state in STATES:
        try:
            with transaction.atomic():
                apply_state(world, state)
                spy.actions.clear()
                owner_response = clients["owner"].get(url)
                if owner_response.status_code == 405:
                    pytest.skip(f"{name} serves nothing on GET")
                needed = {Action(declared)} if declared else (set(spy.actions) or {Action.VIEW_CASE})
                results = {"owner": _outcome(owner_response)}
                for actor in ACTORS[1:]:
                    results[actor] = _outcome(clients[actor].get(url))
                expected = {}
                for actor in ACTORS:
                    allowed = needed <= expected_actions(actor, state)
                    if actor == "link_holder" and not link_aware:
                        allowed = False
                    expected[actor] = "allow" if allowed else "deny"
                if results != expected:
                    wrong.append((state, sorted(needed),
                                  {a: (results[a], expected[a]) for a in ACTORS if results[a] != expected[a]}))
                raise _Rollback
        except _Rollback:
            pass
        world.case.refresh_from_db()
        world.study.refresh_from_db()
    assert not wrong, f"{url} ({name}): (state, needed, {{actor: (got, expected)}}): {wrong}"


@pytest.mark.parametrize(("name", "kwargs", "declared", "link_aware"), CASE_DATA_URLS)
def test_endpoint_writes_are_refused_to_those_who_hold_nothing(world, name, kwargs, declared, link_aware):
    """POST to every case/study endpoint, by every actor the table gives nothing in that state
    (outsiders always; recipients and link holders once their grant is dead): refused, and
    nothing written (each attempt runs in a savepoint that is rolled back)."""
    from django.db import transaction

    url = reverse(name, kwargs={k: _object_for(k, world).public_id for k in kwargs})
    clients = _clients(world)
    wrong = []
    outsiders = [a for a in ACTORS if not any(expected_actions(a, st) for st in STATES)]
    attempts = [("active", a) for a in outsiders] + [
        (st, a) for st in STATES for a in ACTORS if a not in outsiders and not expected_actions(a, st)]
    for state, actor in attempts:
        try:
            with transaction.atomic():
                apply_state(world, state)
                response = clients[actor].post(url, {})
                if response.status_code != 405 and _outcome(response) != "deny":
                    wrong.append((state, actor, response.status_code))
                raise _Rollback
        except _Rollback:
            pass
    assert not wrong, f"POST {url} ({name}) was not refused: (state, actor, status) {wrong}"


# ----------------------------------------------------------------------------- 3. original bytes

def _original_dicom(marker: str) -> bytes:
    """A small generated DICOM file carrying ``marker`` in a private element."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Generated"
    ds.Modality = "CT"
    block = ds.private_block(0x0011, "LIGHTBOX TEST", create=True)
    block.add_new(0x01, "LO", marker)
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(range(16))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _body(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def _contains(body: bytes, needle: bytes) -> bool:
    """``needle`` in the body, or in any file of a zip body (packages may be deflated)."""
    import zipfile

    if needle in body:
        return True
    if body[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                return any(needle in archive.read(info) for info in archive.infolist())
        except zipfile.BadZipFile:
            return False
    return False


def test_preview_only_recipient_never_gets_original_bytes(world):
    from apps.imaging.blobs import put_blob

    marker = "ORIGINAL-" + secrets.token_hex(12)
    data = _original_dicom(marker)
    blob = put_blob(io.BytesIO(data), organization=world.org)
    series = factories.SeriesFactory(organization=world.org, study=world.study)
    factories.InstanceFactory(organization=world.org, study=world.study, series=series, blob=blob,
                              size=blob.size, sha256=blob.sha256)
    clients = _clients(world)
    # the policy agrees before any URL is tried
    for actor in (world.recipient, _link_holder_actor(clients["link_holder"])):
        assert not policy.can(actor, Action.DOWNLOAD_ORIGINAL, world.study)
        assert "original" not in policy.allowed_renditions(actor, world.study)
    tried, owner_got = [], []
    queries = ("", "?rendition=original", "?kind=original", "?format=dicom", "?original=1")
    for param in ALL_OBJECT_URLS:
        name, kwargs = param.values[0], param.values[1]
        try:
            url = reverse(name, kwargs={k: _object_for(k, world).public_id for k in kwargs})
        except AssertionError:
            continue
        for query in queries:
            for actor in ("recipient", "link_holder"):
                body = _body(clients[actor].get(url + query))
                assert not _contains(body, marker.encode()), f"{url}{query} gave a preview-only {actor} the original"
                assert not _contains(body, data[128:256]), f"{url}{query} gave a preview-only {actor} original bytes"
            if _contains(_body(clients["owner"].get(url + query)), marker.encode()):
                owner_got.append(url + query)
        tried.append(url)
    assert tried, "no URL was tried"
    # the check can see a leak: the owner does get the original's bytes from some URL
    assert owner_got, "no URL served the original even to its owner: the check above proves nothing"
