"""A local Firebase Cloud Messaging: Google's OAuth2 token endpoint and FCM HTTP v1 `messages:send`.

Driven through the real firebase-admin client, which has no setting for the FCM address: it always
calls https://fcm.googleapis.com. So this server is also the HTTPS proxy the client is pointed at
(`HTTPS_PROXY`, an environment variable `requests` honours): it answers `CONNECT fcm.googleapis.com:443`
itself, with a certificate for that name issued by a test CA the client trusts (`REQUESTS_CA_BUNDLE`).
Nothing in the application knows it is under test.

The service account is generated here (an RSA key from `cryptography`); its `token_uri` points at
`/token`, which checks the signed JWT assertion with the account's public key, as Google does, and
issues access tokens that `messages:send` then requires.

Tokens behave as listed in `unregistered`, `invalid` and `over_quota`; any other token is delivered.
Every accepted message is kept in `messages` (the FCM `message` object as sent).
"""

from __future__ import annotations

import datetime
import json
import re
import secrets
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.fakes.local_server import LocalHttpServer

FCM_HOST = "fcm.googleapis.com"
# google-auth looks up a service account's allowed locations here in the background, through the same proxy.
IAM_CREDENTIALS_HOST = "iamcredentials.googleapis.com"
_ALLOWED_LOCATIONS = re.compile(r"^/v1/projects/-/serviceAccounts/([^/]+)/allowedLocations$")
PROJECT_ID = "quorum-test"
# FCM v1 accepts a token with either scope; firebase-admin asks for cloud-platform (and others).
MESSAGING_SCOPES = {"https://www.googleapis.com/auth/firebase.messaging",
                    "https://www.googleapis.com/auth/cloud-platform"}
# Google's token endpoint is the assertion's audience wherever the account's token_uri points.
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_SEND_PATH = re.compile(r"^/v1/projects/([^/]+)/messages:send$")
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


def _fcm_error(status: int, grpc_status: str, error_code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": status, "message": message, "status": grpc_status,
                              "details": [{"@type": _FCM_ERROR, "errorCode": error_code}]}}


class FakeFcm(LocalHttpServer):
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.messages: list[dict[str, Any]] = []
        self.token_requests = 0
        self.unregistered: set[str] = set()
        self.invalid: set[str] = set()
        self.over_quota: set[str] = set()
        self._access_tokens: set[str] = set()
        self._lock = threading.Lock()
        self._account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_email = f"firebase-adminsdk@{PROJECT_ID}.iam.gserviceaccount.com"
        self.ca_bundle, self._tls = self._make_tls()
        super().__init__()

    # -- what a test hands to the client ------------------------------------------------------------------

    @property
    def token_uri(self) -> str:
        return f"{self.origin}/token"

    def write_service_account(self) -> Path:
        """A service-account JSON file like the one Firebase's console downloads, pointing at this server."""
        path = self.directory / "service-account.json"
        pem = self._account_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()).decode()
        path.write_text(json.dumps({
            "type": "service_account", "project_id": PROJECT_ID, "private_key_id": secrets.token_hex(20),
            "private_key": pem, "client_email": self.client_email, "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/firebase-adminsdk",
            "universe_domain": "googleapis.com",
        }))
        return path

    def client_environment(self) -> dict[str, str]:
        """Environment variables that send the real client's FCM calls here (through this proxy)."""
        return {
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.write_service_account()),
            "HTTPS_PROXY": self.origin,
            "https_proxy": self.origin,
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
        }

    def sent_to(self, token: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if m.get("token") == token]

    # -- TLS for fcm.googleapis.com -----------------------------------------------------------------------

    def _make_tls(self) -> tuple[Path, ssl.SSLContext]:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Quorum test CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
              .not_valid_after(now + datetime.timedelta(days=2))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                           crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
              .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, FCM_HOST)]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in (FCM_HOST, IAM_CREDENTIALS_HOST)]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        bundle = self.directory / "fake-fcm-ca.pem"
        bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        cert_file, key_file = self.directory / "fake-fcm.pem", self.directory / "fake-fcm.key"
        cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        return bundle, context

    # -- the protocol ---------------------------------------------------------------------------------------

    def _issue_token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"] or not form.get("assertion"):
            return 400, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(form["assertion"][0], self._account_key.public_key(), algorithms=["RS256"],
                                audience=TOKEN_AUDIENCE, issuer=self.client_email)
        except jwt.PyJWTError as exc:
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT Signature. ({exc})"}
        if not MESSAGING_SCOPES & set(str(claims.get("scope", "")).split()):
            return 400, {"error": "invalid_scope"}
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self._lock:
            self._access_tokens.add(token)
            self.token_requests += 1
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def _send(self, project: str, authorization: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            known = token in self._access_tokens
        if scheme != "Bearer" or not known:
            return 401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                   "message": "Request had invalid authentication credentials."}}
        if project != PROJECT_ID:
            return 403, {"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "wrong project"}}
        message = body.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("token"), str):
            return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "message.token required"}}
        data = message.get("data", {})
        if not all(isinstance(v, str) for v in data.values()):
            return 400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "data values: strings"}}
        device = message["token"]
        if device in self.unregistered:
            return _fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
        if device in self.invalid:
            return _fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                              "The registration token is not a valid FCM registration token")
        if device in self.over_quota:
            return _fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for this device.")
        with self._lock:
            self.messages.append(message)
        return 200, {"name": f"projects/{project}/messages/{uuid.uuid4().hex}"}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_CONNECT(self) -> None:  # noqa: N802 - the proxy: become the Google host over TLS
                host, _, port = self.path.partition(":")
                if host not in (FCM_HOST, IAM_CREDENTIALS_HOST) or port != "443":
                    self.send_error(403, "this proxy only reaches fcm.googleapis.com")
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                tls = fake._tls.wrap_socket(self.connection, server_side=True)
                try:
                    Handler(tls, self.client_address, self.server)  # serves the tunnel's requests
                finally:
                    self.close_connection = True

            def do_GET(self) -> None:  # noqa: N802
                found = _ALLOWED_LOCATIONS.match(self.path.partition("?")[0])
                if found is not None and found.group(1) == fake.client_email:
                    self._answer(200, {"locations": ["us-central1", "europe-west1"], "encodedLocations": "0x30"})
                else:
                    self._answer(404, {"error": {"code": 404, "status": "NOT_FOUND", "message": self.path}})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sent = _SEND_PATH.match(self.path)
                if self.path == "/token":
                    status, body = fake._issue_token(parse_qs(raw.decode()))
                elif sent is not None:
                    try:
                        payload = json.loads(raw)
                    except ValueError:
                        payload = {}
                    status, body = fake._send(sent.group(1), self.headers.get("Authorization", ""), payload)
                else:
                    status, body = 404, {"error": {"code": 404, "status": "NOT_FOUND", "message": self.path}}
                self._answer(status, body)

        return Handler
