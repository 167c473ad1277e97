#!/usr/bin/env python3
"""BIMI fixtures for integration/run scenario 17, from the standard library.

  bimi.py logotype SVG         the DER (hex) of an RFC 3709 logotype
                               extension with SVG as the subject logo: a
                               data: URI of the gzip-compressed file and the
                               SHA-256 hash of those bytes (openssl x509
                               -extfile takes it as 1.3.6.1.5.5.7.1.12=DER:..)
  bimi.py serve DIR CERT KEY PORT
                               serves DIR over HTTPS on 127.0.0.1:PORT
"""
import base64
import functools
import gzip
import hashlib
import http.server
import ssl
import sys


def tlv(tag, content):
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + length + content


def logotype(svg):
    data = gzip.compress(svg, mtime=0)
    uri = b"data:image/svg+xml;base64," + base64.b64encode(data)
    sha256 = tlv(0x06, bytes.fromhex("608648016503040201"))
    alg = tlv(0x30, sha256 + tlv(0x05, b""))
    hash_ = tlv(0x30, alg + tlv(0x04, hashlib.sha256(data).digest()))
    details = tlv(0x30, tlv(0x16, b"image/svg+xml") + tlv(0x30, hash_) + tlv(0x30, tlv(0x16, uri)))
    image = tlv(0x30, details)
    # subjectLogo [2] EXPLICIT LogotypeInfo; direct [0] LogotypeData (implicit).
    return tlv(0x30, tlv(0xA2, tlv(0xA0, tlv(0x30, image))))


def main():
    if sys.argv[1:2] == ["logotype"]:
        with open(sys.argv[2], "rb") as f:
            print(logotype(f.read()).hex().upper())
    elif sys.argv[1:2] == ["serve"]:
        directory, cert, key, port = sys.argv[2:6]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), handler)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        httpd.serve_forever()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
