"""A real SMTP server for the tests (aiosmtpd): STARTTLS required, then AUTH required.

Usage: smtp_server.py MAILBOX PORT USER PASSWORD CERT KEY
Every message received is appended to MAILBOX as one JSON line; "ready" is printed once
the server accepts connections.
"""
import json
import ssl
import sys
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

mailbox, port, user, password, cert, key = sys.argv[1:7]


class Handler:
    async def handle_DATA(self, server, session, envelope):
        with open(mailbox, "a") as f:
            f.write(json.dumps({
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                "data": envelope.content.decode("utf8", "replace"),
            }) + "\n")
        return "250 OK"


def authenticate(server, session, envelope, mechanism, data):
    ok = (isinstance(data, LoginPassword)
          and data.login.decode() == user and data.password.decode() == password)
    # handled=False: aiosmtpd answers 535 itself (True would leave the client waiting)
    return AuthResult(success=ok, handled=False)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
controller = Controller(
    Handler(), hostname="127.0.0.1", port=int(port), authenticator=authenticate,
    auth_required=True, auth_require_tls=True, tls_context=ctx, require_starttls=True,
)
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
