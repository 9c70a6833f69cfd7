"""Run the test identity provider: ``python -m tests.oidc_idp.serve PORT`` with IDP_DB, IDP_CLIENT
(id:secret:redirect_uri) and IDP_USERS (username:password:email[:unverified],...) set."""

from __future__ import annotations

import os
import sys

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_idp.settings"


def main() -> None:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0, interactive=False)
    client_id, client_secret, redirect_uri = os.environ["IDP_CLIENT"].split("|")
    Application.objects.update_or_create(client_id=client_id, defaults={
        "name": "Lightbox", "client_secret": client_secret, "redirect_uris": redirect_uri,
        "client_type": Application.CLIENT_CONFIDENTIAL, "skip_authorization": True,
        "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE, "algorithm": Application.RS256_ALGORITHM})
    for spec in filter(None, os.environ.get("IDP_USERS", "").split(",")):
        username, password, email, *flags = spec.split("|")
        user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
        user.email, user.last_name = email, "unverified" if "unverified" in flags else ""
        user.set_password(password)
        user.save()
    call_command("runserver", f"127.0.0.1:{sys.argv[1]}", "--noreload", "--skip-checks")


if __name__ == "__main__":
    main()
