"""The plugin side of hashicorp/go-plugin's gRPC handshake, for Python.

The runner starts a plugin as a child process and expects, on stdout, one
line that says where to connect:

    CORE|APP|NETWORK|ADDRESS|PROTOCOL|SERVER_CERT

With AutoMTLS (the runner always turns it on) the runner passes its client
certificate in PLUGIN_CLIENT_CERT (PEM); the plugin answers with a fresh
self-signed server certificate, as base64 of its DER bytes without padding,
and accepts only connections that present the runner's certificate.

go-plugin also needs the gRPC health service ("plugin" SERVING) for its
Ping, and calls plugin.GRPCController/Shutdown to stop the plugin. Those
two are served here by hand (they carry one enum and nothing), so no extra
package is needed. The stdio and broker services are left unimplemented:
go-plugin tolerates that.
"""

import base64
import datetime
import os
import sys
import threading
from concurrent import futures

import grpc

CORE_PROTOCOL_VERSION = 1

# Must match sdk/wire: Handshake and ProtocolVersion.
MAGIC_COOKIE_KEY = "TGRUNNER_PLUGIN_COOKIE"
MAGIC_COOKIE_VALUE = "b7d1c2a4-tgrunner-plugin-v1"
APP_PROTOCOL_VERSION = 1


def _self_signed_cert():
    """A one-time certificate for "localhost", valid as its own CA, like
    go-plugin's generateCert."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tgrunner plugin"),
    ])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=30))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=True, key_agreement=True, key_cert_sign=True,
            content_commitment=False, data_encipherment=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    der = cert.public_bytes(serialization.Encoding.DER)
    return cert_pem, key_pem, der


def _health_check(request, context):
    # grpc.health.v1.HealthCheckResponse{status: SERVING (1)}: field 1, varint.
    return b"\x08\x01"


def serve(register, plugin_name="plugin"):
    """Serve a plugin until the runner stops it. register(server) adds the
    plugin's own services to the grpc.Server. Never returns."""
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        sys.stderr.write(
            f"{plugin_name} is a tgrunner plugin: the runner starts it, it does nothing on its own.\n"
            "Add it under `plugins:` in the runner's config (with its sha256, see `runner plugins pin`)\n"
            "and start the runner. See docs/plugins.md.\n")
        sys.exit(1)
    offered = os.environ.get("PLUGIN_PROTOCOL_VERSIONS", "")
    if offered and str(APP_PROTOCOL_VERSION) not in offered.split(","):
        sys.stderr.write(
            f"{plugin_name} speaks plugin protocol {APP_PROTOCOL_VERSION}, the runner offers {offered}: "
            "upgrade the plugin or the runner\n")
        sys.exit(1)

    stopped = threading.Event()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)],
    )
    register(server)

    def controller_shutdown(request, context):
        stopped.set()
        return b""

    identity = lambda b: b
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(
                _health_check, request_deserializer=identity, response_serializer=identity),
        }),
        grpc.method_handlers_generic_handler("plugin.GRPCController", {
            "Shutdown": grpc.unary_unary_rpc_method_handler(
                controller_shutdown, request_deserializer=identity, response_serializer=identity),
        }),
    ))

    client_cert = os.environ.get("PLUGIN_CLIENT_CERT", "")
    server_cert_field = ""
    if client_cert:
        cert_pem, key_pem, der = _self_signed_cert()
        creds = grpc.ssl_server_credentials(
            [(key_pem, cert_pem)], root_certificates=client_cert.encode(), require_client_auth=True)
        port = server.add_secure_port("127.0.0.1:0", creds)
        server_cert_field = base64.b64encode(der).decode().rstrip("=")
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    if port == 0:
        sys.stderr.write(f"{plugin_name}: could not listen on 127.0.0.1\n")
        sys.exit(1)
    server.start()

    # The handshake line is the only thing ever written to stdout.
    sys.stdout.write(f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|tcp|127.0.0.1:{port}|grpc|{server_cert_field}\n")
    sys.stdout.flush()

    stopped.wait()
    server.stop(grace=2).wait()
    sys.exit(0)
