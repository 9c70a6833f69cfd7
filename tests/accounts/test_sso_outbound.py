"""Every request the server makes for single sign-on (discovery, token, userinfo, JWKS) is checked
when it is made, and connects to the address checked (apps.accounts.outbound).

The issuer was checked when saved only: a name that resolved to a public address then can resolve
to 127.0.0.1 or 169.254.169.254 later (DNS rebinding), and a public provider's discovery document
can name an internal token endpoint. No test here reaches the internet: names resolve through a
stand-in resolver, and connections go to a TLS server on 127.0.0.1 or are refused by a stand-in."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import urllib3.util.connection

from apps.accounts import outbound
from apps.accounts.adapters import SocialAccountAdapter
from apps.accounts.crypto import encrypt
from apps.accounts.models import SSOConfig
from apps.audit.models import AuditEvent

ISSUER_HOST = "idp.alpha.example"
REFUSED_TEXT = "Lightbox does not connect to"

_real_getaddrinfo = socket.getaddrinfo
_real_create_connection = urllib3.util.connection.create_connection


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.216.34", True), ("2606:4700:4700::1111", True), ("::ffff:93.184.216.34", True),
    ("64:ff9b::808:808", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.20", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("255.255.255.255", False), ("192.0.2.1", False),
    ("::1", False), ("::", False), ("fe80::1", False), ("fc00::1", False), ("fd12:3456::1", False),
    ("fec0::1", False), ("ff02::1", False), ("2001:db8::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.8", False), ("::ffff:169.254.169.254", False),
    ("64:ff9b::a9fe:a9fe", False), ("2002:7f00:1::1", False), ("::7f00:1", False),
])
def test_which_addresses_are_public(address, public):
    assert outbound.is_public(ipaddress.ip_address(address)) is public


@pytest.fixture
def resolver(monkeypatch):
    """names[host] = [address, ...] (a list of such lists: one per lookup, the last repeating);
    ``lookups`` counts the lookups of each name. Other names resolve as usual (none is looked up)."""
    names: dict[str, list] = {}
    lookups: dict[str, int] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in names:
            return _real_getaddrinfo(host, port, *args, **kwargs)
        lookups[host] = lookups.get(host, 0) + 1
        answers = names[host]
        if answers and isinstance(answers[0], list):
            answers = answers[min(lookups[host], len(answers)) - 1]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (a, port or 0, 0, 0) if ":" in a else (a, port or 0)) for a in answers]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    getaddrinfo.names, getaddrinfo.lookups = names, lookups
    return getaddrinfo


@pytest.fixture
def connections(monkeypatch):
    """The (host, port) of every connection urllib3 opens; only those to 127.0.0.1 are made."""
    made: list[tuple[str, int]] = []

    def create_connection(address, *args, **kwargs):
        made.append(address)
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"the test made no connection to {address[0]}")
        return _real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    return made


@pytest.fixture
def alpha_sso(org_a, admin_a, settings):
    """Alpha's single sign-on at https://idp.alpha.example/o (saved when it was public), with
    addresses on private networks refused, as in production."""
    settings.LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS = False
    return SSOConfig.objects.create(organization=org_a, issuer=f"https://{ISSUER_HOST}/o", client_id="lightbox",
                                    client_secret_encrypted=encrypt("alpha-client-secret-0123456789"),
                                    allowed_domains="alpha.example", enabled=True)


def _start_sso(client, email: str = "admin@alpha.example"):
    """"Sign in with your organization" with ``email``, then on through the link it e-mails
    (apps.accounts.sso): the start of the sign-in at the provider."""
    import re

    from django.core import mail
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):  # the e-mail's task, queued after the request
        assert client.post("/accounts/sso/", {"email": email}).status_code == 200
    link = re.search(r"http\S+/accounts/sso/continue/\S+/", mail.outbox[-1].body).group(0)
    return client.post(link)


@pytest.mark.parametrize("now_at", [["127.0.0.1"], ["169.254.169.254"], ["10.0.0.8"], ["::ffff:127.0.0.1"],
                                    ["93.184.216.34", "fd00::1"]])
def test_an_issuer_whose_name_now_resolves_to_the_servers_own_network_is_refused(
        client, alpha_sso, resolver, connections, now_at):
    """DNS rebinding: the issuer's name resolves to an internal address when the sign-in starts
    (or one of its addresses is internal). The discovery document is not fetched: no connection
    at all, a clear refusal (403, not a server error) and the organization's trail names the host."""
    resolver.names[ISSUER_HOST] = now_at
    response = _start_sso(client)
    assert response.status_code == 403
    assert 'data-reason="provider_address"' in response.content.decode()
    assert REFUSED_TEXT in response.content.decode()
    assert connections == []
    event = AuditEvent.objects.get(action="auth.sso_refused")
    assert event.organization_id == alpha_sso.organization_id
    assert event.details == {"reason": "provider_address", "host": ISSUER_HOST, "refused": "private"}


def test_the_providers_own_sign_in_address_is_refused_too(client, alpha_sso, resolver, connections):
    """Anyone may open a provider's sign-in address (allauth's, not "Sign in with your
    organization"): the same refusal."""
    resolver.names[ISSUER_HOST] = ["169.254.169.254"]
    response = client.post("/accounts/oidc/org-alpha/login/")
    assert response.status_code == 403
    assert 'data-reason="provider_address"' in response.content.decode()
    assert connections == []


def test_a_provider_that_cannot_be_reached_gets_a_page_that_says_so(client, alpha_sso, resolver, connections):
    """The provider's public address does not answer when the sign-in starts: a 503 saying the
    identity provider cannot be reached (to try again), not the page for stored files that
    cannot be read, which any other connection error a view raises gets."""
    resolver.names[ISSUER_HOST] = ["93.184.216.34"]
    response = _start_sso(client)
    assert response.status_code == 503 and response["Retry-After"] == "60"
    body = response.content.decode()
    assert 'data-reason="provider_unreachable"' in body and "cannot be reached" in body
    assert "Stored files" not in body
    assert connections == [("93.184.216.34", 443)]


def test_the_connection_goes_to_the_address_that_was_checked(alpha_sso, resolver, connections):
    """The name resolves once per request, to a public address, and the connection goes to that
    address: a second lookup (answering 127.0.0.1) is never made to choose where to connect."""
    resolver.names[ISSUER_HOST] = [["93.184.216.34"], ["127.0.0.1"]]
    session = SocialAccountAdapter().get_requests_session()
    with pytest.raises(requests.ConnectionError) as failed:
        session.get(f"https://{ISSUER_HOST}/o/.well-known/openid-configuration")
    assert not isinstance(failed.value, outbound.DestinationRefused)  # allowed; the stand-in refused it
    assert connections == [("93.184.216.34", 443)]
    assert resolver.lookups[ISSUER_HOST] == 1


# --- against a TLS server on 127.0.0.1 -----------------------------------------------------------

def _certificates(tmp_path, name: str) -> tuple[str, str, str]:
    """A test CA (its certificate file) and a server certificate and key for ``name`` signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Lightbox test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    """An https server on 127.0.0.1 whose certificate names idp.alpha.example, answering
    ``routes[path] = (status, headers, body)``; ``seen`` holds (method, path, Host header). The
    sign-in's sessions trust its test CA."""
    ca, cert, key = _certificates(tmp_path, ISSUER_HOST)
    routes: dict[str, tuple[int, dict, bytes]] = {}
    seen: list[tuple[str, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            seen.append((self.command, self.path, self.headers.get("Host", "")))
            status, headers, body = routes.get(urlsplit(self.path).path, (404, {}, b""))
            self.send_response(status)
            for header, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(header, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    real_session = SocialAccountAdapter.get_requests_session

    def trusting_test_ca(self):
        session = real_session(self)
        session.verify = ca
        return session

    monkeypatch.setattr(SocialAccountAdapter, "get_requests_session", trusting_test_ca)
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # they would take the place of the test CA
        monkeypatch.delenv(variable, raising=False)
    server.routes, server.seen, server.port = routes, seen, server.server_address[1]
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_tls_is_verified_against_the_hosts_name(settings, resolver, connections, tls_server):
    """Connected to an address, the request still names the host (Host, SNI) and its certificate
    must carry that name: another name at the same address is refused by TLS."""
    settings.LIGHTBOX_SSO_ALLOW_PRIVATE_ISSUERS = True  # development: the provider on 127.0.0.1
    resolver.names[ISSUER_HOST] = resolver.names["other.alpha.example"] = ["127.0.0.1"]
    tls_server.routes["/ok"] = (200, {"Content-Type": "application/json"}, b'{"ok": true}')
    session = SocialAccountAdapter().get_requests_session()
    assert session.get(f"https://{ISSUER_HOST}:{tls_server.port}/ok").json() == {"ok": True}
    assert tls_server.seen == [("GET", "/ok", f"{ISSUER_HOST}:{tls_server.port}")]
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"https://other.alpha.example:{tls_server.port}/ok")
    assert connections == [("127.0.0.1", tls_server.port)] * 2


@pytest.fixture
def public_test_server(monkeypatch, tls_server, resolver):
    """The TLS server counts as a public host (127.0.0.1 is taken for a public address, nothing
    else is): idp.alpha.example resolves to it."""
    real_is_public = outbound.is_public
    monkeypatch.setattr(outbound, "is_public",
                        lambda a: a == ipaddress.ip_address("127.0.0.1") or real_is_public(a))
    resolver.names[ISSUER_HOST] = ["127.0.0.1"]
    return tls_server


def test_a_discovery_document_naming_an_internal_token_endpoint_is_refused(
        client, alpha_sso, public_test_server, resolver, connections):
    """The issuer is public, but its discovery document names a token endpoint at the metadata
    service: the sign-in starts (the browser goes to the provider), and when it comes back the
    token request is refused before any connection there, with the refusal page."""
    base = f"https://{ISSUER_HOST}:{public_test_server.port}/o"
    alpha_sso.issuer = base
    alpha_sso.save()
    resolver.names["metadata.alpha.example"] = ["169.254.169.254"]
    public_test_server.routes["/o/.well-known/openid-configuration"] = (200, {"Content-Type": "application/json"},
                                                                        json.dumps({
        "issuer": base, "authorization_endpoint": f"{base}/authorize/",
        "token_endpoint": "https://metadata.alpha.example/token", "userinfo_endpoint": f"{base}/userinfo/",
        "jwks_uri": f"{base}/jwks/"}).encode())

    started = _start_sso(client)
    assert started.status_code == 302 and started["Location"].startswith(f"{base}/authorize/?")
    state = parse_qs(urlsplit(started["Location"]).query)["state"][0]
    back = client.get("/accounts/oidc/org-alpha/login/callback/", {"code": "a-code", "state": state})
    assert back.status_code == 403
    assert 'data-reason="provider_address"' in back.content.decode()
    assert AuditEvent.objects.get(action="auth.sso_refused").details == {
        "reason": "provider_address", "host": "metadata.alpha.example", "refused": "private"}
    assert ("169.254.169.254", 443) not in connections
    assert all(host == "127.0.0.1" for host, _port in connections)


def _discovery(server, base: str) -> None:
    server.routes["/o/.well-known/openid-configuration"] = (200, {"Content-Type": "application/json"}, json.dumps({
        "issuer": base, "authorization_endpoint": f"{base}/authorize/", "token_endpoint": f"{base}/token/",
        "userinfo_endpoint": f"{base}/userinfo/", "jwks_uri": f"{base}/jwks/"}).encode())


@pytest.mark.parametrize("then", ["rebound", "down"])
def test_the_return_from_the_provider_is_checked_as_the_start(
        client, alpha_sso, public_test_server, resolver, connections, then):
    """The return fetches the discovery document again, before allauth's own error handling: a
    name rebound to the metadata service between the start and the return gets the refusal page
    (recorded), a provider gone the page saying it cannot be reached; both were the page for
    stored files that cannot be read (found by a reviewer)."""
    base = f"https://{ISSUER_HOST}:{public_test_server.port}/o"
    alpha_sso.issuer = base
    alpha_sso.save()
    _discovery(public_test_server, base)
    started = _start_sso(client)
    assert started.status_code == 302
    state = parse_qs(urlsplit(started["Location"]).query)["state"][0]
    resolver.names[ISSUER_HOST] = ["169.254.169.254"] if then == "rebound" else ["93.184.216.34"]
    back = client.get("/accounts/oidc/org-alpha/login/callback/", {"code": "a-code", "state": state},
                      HTTP_ACCEPT="text/html")
    body = back.content.decode()
    assert "Stored files" not in body
    if then == "rebound":
        assert back.status_code == 403 and 'data-reason="provider_address"' in body
        assert AuditEvent.objects.filter(action="auth.sso_refused", details__host=ISSUER_HOST).exists()
        assert ("169.254.169.254", 443) not in connections
    else:
        assert back.status_code == 503 and 'data-reason="provider_unreachable"' in body


def test_a_redirect_to_an_internal_address_is_refused(alpha_sso, public_test_server, connections):
    """Every redirect is checked again: the public provider answering with a redirect to the
    metadata service gets no request there."""
    public_test_server.routes["/o/.well-known/openid-configuration"] = (
        302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b"")
    session = SocialAccountAdapter().get_requests_session()
    with pytest.raises(outbound.DestinationRefused) as refused:
        session.get(f"https://{ISSUER_HOST}:{public_test_server.port}/o/.well-known/openid-configuration")
    assert refused.value.host == "169.254.169.254"
    assert connections == [("127.0.0.1", public_test_server.port)]


# --- a provider with several addresses -------------------------------------------------------------

@pytest.mark.parametrize("first", ["93.184.216.34", "2606:4700:4700::1111"])
def test_the_next_address_is_tried_when_the_first_refuses_the_connection(public_test_server, resolver, connections,
                                                                         first):
    """A provider with several public addresses whose first does not take connections is reached
    at the next (it failed: only the first was tried)."""
    resolver.names[ISSUER_HOST] = [first, "127.0.0.1"]
    public_test_server.routes["/ok"] = (200, {"Content-Type": "application/json"}, b'{"ok": true}')
    session = SocialAccountAdapter().get_requests_session()
    assert session.get(f"https://{ISSUER_HOST}:{public_test_server.port}/ok").json() == {"ok": True}
    assert connections == [(first, public_test_server.port), ("127.0.0.1", public_test_server.port)]
    assert public_test_server.seen == [("GET", "/ok", f"{ISSUER_HOST}:{public_test_server.port}")]
    assert resolver.lookups[ISSUER_HOST] == 1


def test_addresses_that_do_not_answer_share_the_connect_timeout(alpha_sso, resolver, monkeypatch):
    """Four public addresses that time out are each tried, the four attempts together within the
    request's connect timeout (each but the last half the time left), not four timeouts."""
    resolver.names[ISSUER_HOST] = ["93.184.216.34", "93.184.216.35", "2606:4700:4700::1111", "93.184.216.36"]
    clock, attempts = [1000.0], []

    def create_connection(address, timeout=None, *args, **kwargs):
        attempts.append((address[0], timeout))
        clock[0] += timeout
        raise TimeoutError("the stand-in never answers")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    monkeypatch.setattr(outbound, "monotonic", lambda: clock[0], raising=False)
    session = SocialAccountAdapter().get_requests_session()
    with pytest.raises(requests.ConnectTimeout):
        session.get(f"https://{ISSUER_HOST}/o/.well-known/openid-configuration", timeout=(4, 30))
    assert attempts == [("93.184.216.34", 2.0), ("93.184.216.35", 1.0), ("2606:4700:4700::1111", 0.5),
                        ("93.184.216.36", 0.5)]


@pytest.mark.parametrize("addresses", [["93.184.216.34", "169.254.169.254"], ["127.0.0.1", "93.184.216.34"],
                                       ["10.0.0.8", "192.168.1.20"]])
def test_a_host_with_any_address_not_public_is_still_refused(alpha_sso, resolver, connections, addresses):
    """Trying the next address never reaches one that is not public: the host is refused before
    any connection."""
    resolver.names[ISSUER_HOST] = addresses
    session = SocialAccountAdapter().get_requests_session()
    with pytest.raises(outbound.DestinationRefused) as refused:
        session.get(f"https://{ISSUER_HOST}/o/.well-known/openid-configuration")
    assert refused.value.reason == "private"
    assert connections == []


# --- through a proxy -------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_environment_proxy(monkeypatch):
    """No proxy from the environment the tests run in; a test sets its own."""
    for variable in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.lower(), raising=False)


@pytest.fixture
def connect_proxy(tls_server, monkeypatch):
    """An http proxy on 127.0.0.1 taking CONNECT for any name to the TLS server (it is the one
    resolving names); ``asked`` holds each request's method and target. The environment names it (HTTPS_PROXY,
    HTTP_PROXY)."""
    import socketserver

    asked: list[str] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline().decode("latin-1").strip()
            asked.append(" ".join(line.split()[:2]))  # method and target
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            if not line.startswith("CONNECT "):
                self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = socket.create_connection(("127.0.0.1", tls_server.port))
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()

            def pipe(source, sink):
                try:
                    while data := source.recv(65536):
                        sink.sendall(data)
                except OSError:
                    pass
                finally:
                    for end in (source, sink):
                        try:
                            end.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass

            back = threading.Thread(target=pipe, args=(upstream, self.connection), daemon=True)
            back.start()
            pipe(self.connection, upstream)
            back.join(5)
            upstream.close()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.asked, server.port = asked, server.server_address[1]
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.port}")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_sign_in_goes_through_the_configured_proxy_to_the_providers_name(
        client, alpha_sso, connect_proxy, tls_server, resolver, connections):
    """A hospital's server reaches the internet only through its proxy (HTTPS_PROXY), and names
    outside do not resolve there: the discovery document is fetched through the proxy, asked to
    CONNECT to the provider's name (it resolves it), and the sign-in starts. The proxy's own
    address (127.0.0.1 here) is the operator's and not refused. Before, no proxy was used: the
    sign-in was refused (the name did not resolve)."""
    resolver.names[ISSUER_HOST] = []
    base = f"https://{ISSUER_HOST}/o"
    _discovery(tls_server, base)
    started = client.post("/accounts/oidc/org-alpha/login/")
    assert started.status_code == 302 and started["Location"].startswith(f"{base}/authorize/?")
    assert connect_proxy.asked == [f"CONNECT {ISSUER_HOST}:443"]
    assert tls_server.seen == [("GET", "/o/.well-known/openid-configuration", ISSUER_HOST)]
    assert connections == [("127.0.0.1", connect_proxy.port)]
    assert not AuditEvent.objects.filter(action="auth.sso_refused").exists()


def test_an_issuer_that_resolves_only_at_the_proxy_can_be_saved(alpha_sso, resolver, monkeypatch):
    """The issuer is checked when saved as its requests are: where a proxy applies to it, a name
    that does not resolve here is the proxy's to resolve; where none does (or NO_PROXY names the
    host), it is still refused."""
    from apps.accounts.services import sso_issuer_refusal

    resolver.names[ISSUER_HOST] = []
    assert "could not be found" in sso_issuer_refusal(f"https://{ISSUER_HOST}/o")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.hospital.example:3128")
    assert sso_issuer_refusal(f"https://{ISSUER_HOST}/o") is None
    monkeypatch.setenv("NO_PROXY", ISSUER_HOST)
    assert "could not be found" in sso_issuer_refusal(f"https://{ISSUER_HOST}/o")


@pytest.mark.parametrize(("url", "addresses", "reason"), [
    (f"https://{ISSUER_HOST}/o", ["169.254.169.254"], "private"),
    (f"https://{ISSUER_HOST}/o", ["93.184.216.34", "10.0.0.8"], "private"),
    ("https://169.254.169.254/latest/meta-data/", None, "private"),
    ("https://[::ffff:127.0.0.1]/token", None, "private"),
    (f"http://{ISSUER_HOST}/o", [], "not_https"),
])
def test_through_the_proxy_what_is_known_not_public_is_still_refused(
        alpha_sso, connect_proxy, resolver, connections, url, addresses, reason):
    """The proxy resolves the name, but a host given as an address that is not public, or whose
    name resolves here to one, is refused before the proxy is asked; and one unknown here must be
    https (it is taken for a public host)."""
    if addresses is not None:
        resolver.names[ISSUER_HOST] = addresses
    session = SocialAccountAdapter().get_requests_session()
    with pytest.raises(outbound.DestinationRefused) as refused:
        session.get(url)
    assert refused.value.reason == reason
    assert connections == [] and connect_proxy.asked == []


def test_a_host_no_proxy_names_is_connected_to_directly_at_the_address_checked(
        alpha_sso, connect_proxy, resolver, connections, monkeypatch):
    """NO_PROXY: the request does not go through the proxy, and is pinned as without one."""
    monkeypatch.setenv("NO_PROXY", ISSUER_HOST)
    resolver.names[ISSUER_HOST] = ["93.184.216.34"]
    session = SocialAccountAdapter().get_requests_session()
    with pytest.raises(requests.ConnectionError) as failed:
        session.get(f"https://{ISSUER_HOST}/o/.well-known/openid-configuration")
    assert not isinstance(failed.value, outbound.DestinationRefused)
    assert connections == [("93.184.216.34", 443)] and connect_proxy.asked == []


# --- a host written as an address, in any form --------------------------------------------------

NOT_PUBLIC_WRITTEN_AS = [
    ("127.0.0.1.", "127.0.0.1"), ("169.254.169.254.", "169.254.169.254"), ("10.0.0.8..", "10.0.0.8"),
    ("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"), ("0251.0376.0251.0376.", "169.254.169.254"),
    ("2852039166.", "169.254.169.254"), ("0xa.0x8", "10.0.0.8"),
]


@pytest.mark.parametrize(("host", "address"), NOT_PUBLIC_WRITTEN_AS)
def test_an_address_in_another_form_is_that_address(host, address):
    assert str(outbound.host_address(host)) == address


@pytest.mark.parametrize(("host", "address"), NOT_PUBLIC_WRITTEN_AS)
def test_through_the_proxy_a_non_public_address_in_any_form_is_refused(
        alpha_sso, connect_proxy, resolver, connections, host, address):
    """A host written as a non-public address, with a trailing dot or as inet_aton reads one
    (decimal, hex, octal, fewer parts), is refused before the proxy is asked, whatever the
    server's resolver makes of it: ``127.0.0.1.`` does not resolve here, so it was left to the
    proxy, which may connect to it, and could be saved as an issuer (found by a reviewer). The
    stand-in resolver finds none of these, as a resolver that does not read the form would."""
    resolver.names[host] = []
    url = f"https://{host}/latest/meta-data/"
    from apps.accounts.services import sso_issuer_refusal

    assert "private or local network" in sso_issuer_refusal(url)
    session = SocialAccountAdapter().get_requests_session()
    with pytest.raises(outbound.DestinationRefused) as refused:
        session.get(url)
    assert refused.value.reason == "private"
    assert connections == [] and connect_proxy.asked == [] and resolver.lookups == {}


@pytest.mark.parametrize("host", ["1.2.3.4.5", "idp.123", "256.0.0.1", "08.0.0.1", "4294967296", "1.2.3.4.5."])
def test_a_host_written_as_an_address_but_none_is_refused(alpha_sso, connect_proxy, resolver, connections, host):
    """A host whose last label is a number is an IPv4 address or nothing (the URL standard's
    rule): not a name for the proxy to resolve."""
    resolver.names[host] = []
    from apps.accounts.services import sso_issuer_refusal

    assert "Enter the provider's https:// address." in sso_issuer_refusal(f"https://{host}/o")
    session = SocialAccountAdapter().get_requests_session()
    with pytest.raises(outbound.DestinationRefused) as refused:
        session.get(f"https://{host}/o")
    assert refused.value.reason == "address"
    assert connections == [] and connect_proxy.asked == []


def test_a_public_address_with_a_trailing_dot_is_connected_to(alpha_sso, resolver, connections):
    """Without a proxy, a public address written with a trailing dot is that address (it was
    refused: the name '93.184.216.34.' does not resolve)."""
    resolver.names["93.184.216.34."] = []
    session = SocialAccountAdapter().get_requests_session()
    with pytest.raises(requests.ConnectionError) as failed:
        session.get("https://93.184.216.34./o/.well-known/openid-configuration")
    assert not isinstance(failed.value, outbound.DestinationRefused)
    assert connections == [("93.184.216.34", 443)]
