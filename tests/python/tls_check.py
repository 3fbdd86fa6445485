"""Python's ssl module and the official twilio library against assetd over HTTPS.

Environment: PORT (the HTTPS port), HOST (an environment's host name, resolving is done by
connecting to 127.0.0.1 with that SNI and Host), CA (the PEM to trust), AUTH_TOKEN, PROTECTED
(the path of a protected asset), PUBLIC (a public asset's path), PRIVATE (a private one's).
Exits non-zero on any failure; prints OK at the end.
"""

import http.client
import os
import ssl

from twilio.request_validator import RequestValidator

port = int(os.environ["PORT"])
host = os.environ["HOST"]
ctx = ssl.create_default_context(cafile=os.environ["CA"])
ctx.set_alpn_protocols(["http/1.1"])
validator = RequestValidator(os.environ["AUTH_TOKEN"])


def get(path, headers=None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    # SNI and certificate check against the environment's name, TCP to loopback.
    conn.sock = ctx.wrap_socket(
        __import__("socket").create_connection(("127.0.0.1", port)), server_hostname=host
    )
    h = {"Host": "%s:%d" % (host, port)}
    h.update(headers or {})
    conn.request("GET", path, headers=h)
    r = conn.getresponse()
    body = r.read()
    assert conn.sock.version() in ("TLSv1.3", "TLSv1.2"), conn.sock.version()
    conn.close()
    return r.status, body


status, body = get(os.environ["PUBLIC"])
assert status == 200, status

status, _ = get(os.environ["PRIVATE"])
assert status == 404, status

protected = os.environ["PROTECTED"]
status, _ = get(protected)
assert status == 403, "unsigned: %s" % status

https_url = "https://%s:%d%s" % (host, port, protected)
status, _ = get(protected, {"X-Twilio-Signature": validator.compute_signature(https_url, {})})
assert status == 200, "signed over %s: %s" % (https_url, status)

# As a client of the default port 443 asks (Host without a port): Twilio's library may sign
# the URL with or without ":443", and both are accepted.
for signed in ("https://%s%s" % (host, protected), "https://%s:443%s" % (host, protected)):
    sig = validator.compute_signature(signed, {})
    status, _ = get(protected, {"Host": host, "X-Twilio-Signature": sig})
    assert status == 200, "signed over %s, Host %s: %s" % (signed, host, status)
    assert validator.validate("https://%s%s" % (host, protected), {}, sig)
# Over plain http the default port is 80: a ":80" signature is no https signature.
sig = validator.compute_signature("http://%s:80%s" % (host, protected), {})
status, _ = get(protected, {"Host": host, "X-Twilio-Signature": sig})
assert status == 403, "signed over http://%s:80: %s" % (host, status)

http_url = "http://%s:%d%s" % (host, port, protected)
status, _ = get(protected, {"X-Twilio-Signature": validator.compute_signature(http_url, {})})
assert status == 403, "signed over the http:// URL: %s" % status

print("OK")
