"""Where the portal's server may connect for single sign-on, and the one HTTP transport every
such request goes through.

An organization's admin names its SSO provider's issuer, and the server then fetches from it and
from the addresses its discovery document names (token, userinfo, JWKS). So each of those
requests is a request the server makes on an admin's word, to hosts whose names anyone running a
DNS zone can point anywhere: at save time to a public address, later (DNS rebinding) to
127.0.0.1, 10.x or a cloud's metadata service at 169.254.169.254; and a public provider's
discovery document may name an internal token endpoint.

Security contract: ``PinnedTransport`` resolves a request's host once, refuses it unless every
address is public (``is_public``: not loopback, private, link-local, shared, reserved, multicast
or unspecified, IPv4 and IPv6, an IPv4 address carried in an IPv6 one judged as itself), and
connects to the address it checked (a second resolution cannot switch it), sending the host's
name as the Host header and in TLS (SNI), whose certificate is verified against that name. Every
redirect passes through it again. allauth makes all its OpenID Connect requests through
``SocialAccountAdapter.get_requests_session`` (apps.accounts.adapters), which mounts it; the
issuer is checked with the same rule when it is saved (``services.sso_issuer_refusal``).
``LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS`` (tests and development: a provider on 127.0.0.1; never on
in production) lets these requests reach non-public addresses, still pinned; a public host must
be https."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: the well-known NAT64 prefix (RFC 6052): an IPv4 address in its last 32 bits
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet: not the server's own networks (loopback,
    private, link-local, shared 100.64/10, unique-local, site-local), nor reserved, multicast or
    unspecified. An IPv6 address carrying an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, NAT64) is
    judged as that IPv4 address; one of 6to4 or Teredo is public only when its IPv4 address is too."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        carried = address.sixtofour or (address.teredo or (None, None))[1]
        if carried is not None and not is_public(carried):
            return False
        if address.is_site_local:
            return False
    return address.is_global and not (address.is_private or address.is_loopback or address.is_link_local
                                      or address.is_reserved or address.is_multicast or address.is_unspecified)


@dataclass(frozen=True)
class Destination:
    """A URL's scheme, host and port, and the addresses its host resolved to (in the resolver's
    order; none when it did not resolve)."""

    scheme: str
    host: str
    port: int | None
    addresses: tuple[str, ...]

    @property
    def public(self) -> bool:
        return bool(self.addresses) and all(is_public(ipaddress.ip_address(a.split("%")[0]))
                                            for a in self.addresses)


def destination(url: str) -> Destination:
    """Resolve ``url``'s host (once: the caller connects to what this returns)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:  # a port out of range
        return Destination(scheme, host, None, ())
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found
                                        if info[0] in (socket.AF_INET, socket.AF_INET6)))
        for address in addresses:
            ipaddress.ip_address(address.split("%")[0])
    except (OSError, ValueError, UnicodeError):  # gaierror: not found
        addresses = ()
    return Destination(scheme, host, port, addresses)


def refusal(dest: Destination) -> str | None:
    """Why the server may not connect to ``dest`` (None: it may): ``"address"`` (not an http(s)
    URL with a host), ``"not_found"`` (the host did not resolve), ``"private"`` (an address is not
    public), ``"not_https"`` (a public host over http). Where ``LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS``
    is on, a host that is not public (or unknown) is accepted, over http too."""
    if dest.scheme not in ("http", "https") or not dest.host or dest.port is None:
        return "address"
    if not dest.public:
        if settings.LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS:
            return None
        return "private" if dest.addresses else "not_found"
    if dest.scheme != "https":
        return "not_https"
    return None


class DestinationRefused(requests.ConnectionError):
    """A request of the sign-in refused before any connection. A ``requests`` error: allauth's
    callback turns those into its authentication-error path, where
    ``SocialAccountAdapter.on_authentication_error`` shows the refusal; the sign-in's start
    (which fetches the discovery document) is ``views.sso_provider_login``, which shows it too."""

    def __init__(self, url: str, host: str, reason: str) -> None:
        super().__init__(f"refused to connect to {host}: {reason}")
        self.url, self.host, self.reason = url, host, reason


class PinnedTransport(HTTPAdapter):
    """A requests transport that checks each request's destination (``refusal``) and connects
    to the address it checked, verifying TLS against the host's name."""

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,
                                             cert: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        dest = destination(request.url or "")
        reason = refusal(dest) or (None if dest.addresses else "not_found")
        if reason:
            raise DestinationRefused(request.url or "", dest.host, reason)
        host_params["host"] = dest.addresses[0]  # the address checked, not the name again
        if dest.scheme == "https":
            pool_kwargs["server_hostname"] = dest.host  # SNI, and the name the certificate must carry
        return host_params, pool_kwargs

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        """The connection goes to an address, so the Host header names the host; set on a copy
        (a redirect to another host is prepared from the original). No proxy (one from the
        environment would resolve the name again, itself)."""
        pinned = request.copy()
        pinned.headers["Host"] = urlsplit(request.url or "").netloc.rpartition("@")[2]
        kwargs["proxies"] = {}
        return super().send(pinned, *args, **kwargs)


def pinned_session(session: requests.Session) -> requests.Session:
    """``session`` sending every http and https request through ``PinnedTransport``."""
    transport = PinnedTransport()
    session.mount("https://", transport)
    session.mount("http://", transport)
    return session
