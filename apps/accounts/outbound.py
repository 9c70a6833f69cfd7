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
be https.

A host with several addresses (all of them public) is tried at each in turn, in the resolver's
order, while connecting fails (refused, unreachable, timed out: nothing was sent). All the
attempts together take at most the request's connect timeout, as one address alone did; each but
the last at most half the time left (curl's rule), so one that does not answer leaves time for the
next, and one that refuses costs nothing.

A proxy (the process's ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``, by requests'
own rule: what the session passes to ``send``) is used for the hosts it applies to, as hospitals
whose servers reach the internet only through one need: the request goes through it with CONNECT
to the host's *name*, and the proxy resolves it. The pinning cannot apply there, so the proxy is
the network's control point for those requests; the portal still refuses, before any connection,
a host given as a non-public address (in any form a resolver or proxy reads as one:
``host_address``) or whose name resolves here to any non-public address (a name that does not
resolve here is left to the proxy, https only). The proxy's own address is the
operator's and is not checked. Only http(s) proxies: a SOCKS one may resolve the name here again."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies, prepend_scheme_if_needed, select_proxy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: the well-known NAT64 prefix (RFC 6052): an IPv4 address in its last 32 bits
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: seconds one connection attempt may take when the request names no connect timeout
DEFAULT_CONNECT_TIMEOUT = 10.0


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
    order; none when it did not resolve), or the one it is written as. ``port`` None: no URL
    the server connects to (a port out of range, a host written as an address but none)."""

    scheme: str
    host: str
    port: int | None
    addresses: tuple[str, ...]

    @property
    def public(self) -> bool:
        return bool(self.addresses) and all(is_public(ipaddress.ip_address(a.split("%")[0]))
                                            for a in self.addresses)


#: an IPv4 address's part as inet_aton and URL parsers read it: decimal, 0x-hex, 0-octal
_IPV4_PART = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)\Z")


def host_address(host: str) -> IPAddress | None:
    """The address ``host`` (a URL's host, without brackets) is written as, None if it is a name.

    Read as resolvers, proxies and browsers read it, never left to this platform's resolver: one
    that did not take a form (``127.0.0.1.``: a trailing dot, a name here that finds nothing) left
    the host to a proxy, which may well connect to it (found by a reviewer). Trailing dots are
    dropped, and an IPv4 address is taken in every form inet_aton and URL parsers take
    (``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``). ``ValueError``: written as an address
    but none (its last label a number, the WHATWG URL rule, but no IPv4 address, as
    ``1.2.3.4.5`` or ``09.1``; an IPv6 one that does not parse): no host the server connects to."""
    name = host.rstrip(".")
    if ":" in name:
        return ipaddress.ip_address(name)
    labels = name.split(".")
    if not _IPV4_PART.match(labels[-1]):
        return None
    if len(labels) > 4 or not all(_IPV4_PART.match(label) for label in labels):
        raise ValueError(f"not an IPv4 address: {host!r}")
    numbers = [_ipv4_part(label) for label in labels]
    *leading, last = numbers
    # a.b.c.d; a.b.c (c: 16 bits); a.b (b: 24 bits); a (32 bits)
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"not an IPv4 address: {host!r}")
    return ipaddress.IPv4Address(sum(n << (8 * (3 - i)) for i, n in enumerate(leading)) + last)


def _ipv4_part(label: str) -> int:
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    return int(label, 8) if len(label) > 1 and label.startswith("0") else int(label)  # ValueError: 08


def destination(url: str) -> Destination:
    """Resolve ``url``'s host (once: the caller connects to what this returns). A host written as
    an address (``host_address``, in any form) is that address, not looked up; one written as an
    address but none has no port (refused as no address)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    try:
        port = parts.port or (443 if scheme == "https" else 80)
        literal = host_address(host)
    except ValueError:  # a port out of range; a host written as an address but none
        return Destination(scheme, host, None, ())
    if literal is not None:
        return Destination(scheme, host, port, (str(literal),))
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in found
                                        if info[0] in (socket.AF_INET, socket.AF_INET6)))
        for address in addresses:
            ipaddress.ip_address(address.split("%")[0])
    except (OSError, ValueError, UnicodeError):  # gaierror: not found
        addresses = ()
    return Destination(scheme, host, port, addresses)


def proxy_for(url: str, proxies: Mapping[str, str] | None = None) -> str | None:
    """The proxy a request to ``url`` goes through (None: it connects itself): the one
    ``proxies`` names for its scheme and host, by default the environment's (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY``; none for a host ``NO_PROXY`` names), requests' own rule."""
    try:
        return select_proxy(url, dict(get_environ_proxies(url) if proxies is None else proxies)) or None
    except ValueError:  # not a URL (a port out of range): refused as such (``refusal``)
        return None


def refusal(dest: Destination, *, proxied: bool = False) -> str | None:
    """Why the server may not connect to ``dest`` (None: it may): ``"address"`` (not an http(s)
    URL with a host), ``"not_found"`` (the host did not resolve), ``"private"`` (an address is not
    public), ``"not_https"`` (a public host over http). Where ``LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS``
    is on, a host that is not public (or unknown) is accepted, over http too. ``proxied``: the
    request goes through a proxy, which resolves the name: one that does not resolve here is
    taken for a public host (https), not refused."""
    if dest.scheme not in ("http", "https") or not dest.host or dest.port is None:
        return "address"
    if not dest.public:
        if settings.LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS:
            return None
        if dest.addresses:
            return "private"
        if not proxied:
            return "not_found"
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


#: set by ``PinnedTransport.send`` on the request it passes on: the address to connect to, or
#: ``_BY_NAME`` (through a proxy, CONNECT to the name)
_ROUTE = "_lightbox_route"
_BY_NAME = "name"


class PinnedTransport(HTTPAdapter):
    """A requests transport that checks each request's destination (``refusal``) and connects
    to an address it checked, verifying TLS against the host's name; or, where a proxy applies,
    sends it through the proxy to the host's name."""

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,
                                             cert: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        route = getattr(request, _ROUTE, None)
        if route is None:  # not through send(), which checks: never a connection unchecked
            raise DestinationRefused(request.url or "", urlsplit(request.url or "").hostname or "", "address")
        if route != _BY_NAME:
            host_params["host"] = route  # the address checked, not the name again
            if host_params.get("scheme") == "https":
                pool_kwargs["server_hostname"] = urlsplit(request.url or "").hostname  # SNI, the certificate's name
        return host_params, pool_kwargs

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Mapping[str, str] | None = None) -> requests.Response:
        """Check the destination, then send through the proxy that applies (``proxies``, which a
        session fills from the environment) or else to each checked address in turn while
        connecting fails. The connection goes to an address, so the Host header names the host;
        set on a copy (a redirect to another host is prepared from the original)."""
        url = request.url or ""
        dest = destination(url)
        proxy = proxy_for(url, proxies or {})
        reason = refusal(dest, proxied=proxy is not None) or (None if dest.addresses or proxy else "not_found")
        if reason:
            raise DestinationRefused(url, dest.host, reason)
        pinned = request.copy()
        pinned.headers["Host"] = urlsplit(url).netloc.rpartition("@")[2]
        if proxy is not None:
            if urlsplit(prepend_scheme_if_needed(proxy, "http")).scheme.lower() not in ("http", "https"):
                raise requests.exceptions.InvalidProxyURL(
                    "single sign-on goes through an http(s) proxy only (a SOCKS one may resolve the name here)")
            setattr(pinned, _ROUTE, _BY_NAME)
            return super().send(pinned, stream, timeout, verify, cert, {"all": proxy})
        connect, read = _timeouts(timeout)
        deadline = monotonic() + connect
        for index, address in enumerate(dest.addresses):
            last = index == len(dest.addresses) - 1
            left = deadline - monotonic()
            setattr(pinned, _ROUTE, address)
            try:
                return super().send(pinned, stream, (max(left if last else left / 2, 0.001), read), verify, cert, {})
            except requests.ConnectionError as exc:
                if last or not _not_connected(exc) or deadline - monotonic() <= 0:
                    raise
        raise AssertionError("unreachable: a destination without addresses is refused above")


def _timeouts(timeout: Any) -> tuple[float, float | None]:
    """A request's (connect, read) timeouts, as requests takes them (a number for both, a pair, a
    urllib3 ``Timeout``); the connect timeout never unbounded (``DEFAULT_CONNECT_TIMEOUT``)."""
    if isinstance(timeout, tuple):
        connect, read = timeout
    elif isinstance(timeout, urllib3.Timeout):
        connect, read = timeout.connect_timeout, timeout.read_timeout
    else:
        connect = read = timeout
    connect = float(connect) if isinstance(connect, int | float) else DEFAULT_CONNECT_TIMEOUT
    return connect, (float(read) if isinstance(read, int | float) else None)


def _not_connected(exc: requests.ConnectionError) -> bool:
    """Whether ``exc`` is a failure to connect (refused, unreachable, timed out while
    connecting): nothing of the request was sent, so another address may be tried."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    cause = exc.args[0] if exc.args else None
    return isinstance(getattr(cause, "reason", None), urllib3.exceptions.NewConnectionError)


def pinned_session(session: requests.Session) -> requests.Session:
    """``session`` sending every http and https request through ``PinnedTransport``."""
    transport = PinnedTransport()
    session.mount("https://", transport)
    session.mount("http://", transport)
    return session
