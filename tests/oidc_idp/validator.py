from __future__ import annotations

from oauth2_provider.oauth2_validators import OAuth2Validator


class Validator(OAuth2Validator):
    """Adds e-mail claims. A user whose last_name is "unverified" has an unverified e-mail."""

    def get_additional_claims(self, request):
        user = request.user
        return {"email": user.email, "email_verified": user.last_name != "unverified",
                "name": user.first_name or user.username}
