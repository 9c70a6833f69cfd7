"""The demo world that `manage.py seed_demo` builds: fictional organizations and people only.

Each feature extends ``seed`` so that the demo shows what it built. Idempotent: running it twice
changes nothing and makes no duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from apps.accounts.models import User
from apps.organizations.models import Membership, Organization, Role

DEMO_PASSWORD = "lightbox-demo"  # embedded default only; seed_demo refuses elsewhere

ORGS = [
    ("northwind", "Northwind General Hospital", "northwind.example"),
    ("harbor", "Harbor Valley Clinic", "harborvalley.example"),
]

ROLE_LOCALPART = {
    Role.ORG_ADMIN: ("admin", "Avery Admin"),
    Role.RADIOLOGIST: ("radiologist", "Riley Radiologist"),
    Role.CLINICIAN: ("clinician", "Casey Clinician"),
    Role.COORDINATOR: ("coordinator", "Corey Coordinator"),
    Role.EXTERNAL_CONSULTANT: ("consultant", "Emery Consultant"),
    Role.PATIENT: ("patient", "Pat Example"),
}

#: someone who works in both organizations, to show the organization switcher
SHARED_USER = ("dr.morgan@lightbox.example", "Dr. Morgan Shared",
               {"northwind": Role.RADIOLOGIST, "harbor": Role.EXTERNAL_CONSULTANT})


@dataclass(frozen=True)
class DemoAccount:
    email: str
    organization: str
    role: str


def _user(email: str, full_name: str) -> User:
    user, created = User.objects.get_or_create(email=email, defaults={"full_name": full_name})
    if created or not user.has_usable_password():
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    return user


@transaction.atomic
def seed() -> list[DemoAccount]:
    accounts: list[DemoAccount] = []
    orgs: dict[str, Organization] = {}
    for slug, name, domain in ORGS:
        org, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": name})
        orgs[slug] = org
        for role, (local, full_name) in ROLE_LOCALPART.items():
            user = _user(f"{local}@{domain}", f"{full_name} ({name.split()[0]})")
            Membership.objects.get_or_create(user=user, organization=org, defaults={"role": role})
            accounts.append(DemoAccount(user.email, org.name, Role(role).label))
    # someone who chose Spanish: their pages are in Spanish on any browser they sign in on
    User.objects.filter(email=f"clinician@{ORGS[1][2]}", language="").update(language="es")
    email, full_name, roles = SHARED_USER
    shared = _user(email, full_name)
    for slug, role in roles.items():
        Membership.objects.get_or_create(user=shared, organization=orgs[slug], defaults={"role": role})
        accounts.append(DemoAccount(email, orgs[slug].name, Role(role).label))
    from apps.accounts.demo import seed_identity

    # demo users whose role requires a second factor get the published demo authenticator
    seed_identity(list(User.objects.filter(email__in={a.email for a in accounts})))
    from apps.cases.demo import seed_cases

    seed_cases(orgs["northwind"], "northwind.example")  # cases, notes and a scheduled tumor board
    from apps.imaging.demo import seed_brain_mr, seed_id_check_study, seed_imaging, seed_unattached_study

    seed_imaging(orgs["northwind"])  # the demo patient's own chest CT on the chest CT case
    seed_brain_mr(orgs["northwind"])  # a small brain MR study (two series) on the brain MR case
    # an NM bone scan of another patient's ID on the case that shows the patient-ID warning on purpose
    seed_id_check_study(orgs["northwind"])
    # a head CT the demo clinician uploaded with "No case (attach later)", to attach from its page
    seed_unattached_study(orgs["northwind"], "northwind.example")
    from apps.renditions.demo import seed_renditions

    seed_renditions(orgs["northwind"])  # original, lossless, preview and education renditions
    from apps.deid.demo import seed_deid

    seed_deid(orgs["northwind"])  # one finished de-identified export of the demo CT study
    from apps.sharing.demo import seed_shares

    seed_shares(orgs["northwind"], "northwind.example")  # live and expired shares, a pending original request
    from apps.cases.demo import seed_harbor_case

    # Harbor Valley (the Spanish-speaking demo clinician's): one case with a CT slice and its renditions
    seed_imaging(orgs["harbor"], case=seed_harbor_case(orgs["harbor"], "harborvalley.example"), files=["CT_small.dcm"])
    seed_renditions(orgs["harbor"])
    return accounts
