#!/usr/bin/env python3
"""Opens N idle PostgreSQL client connections and holds them (benches/compare.sh, idle RSS).

Each connection does the real v3 startup and the password exchange the server asks for
(cleartext or md5; SCRAM is not needed here: compare.sh uses an md5 user), waits for
ReadyForQuery and then stays idle. A few handshakes are kept in flight at once (--concurrency) so
that 10,000 logins take seconds, not minutes.

Once every connection is ready (or failed, or --connect-timeout passed) a JSON summary is written
to --status, and the connections are held until SIGTERM/SIGINT or --hold seconds, whichever comes
first. Then all sockets are closed (with a Terminate message) and the process exits.

Standard library only. Loopback targets only: the host must be 127.0.0.0/8 or ::1.
"""

import argparse
import hashlib
import ipaddress
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

PROTOCOL_3_0 = 196608


def startup_packet(user, database):
    body = struct.pack("!I", PROTOCOL_3_0)
    for key, value in (("user", user), ("database", database),
                       ("application_name", "pgsluice-idle")):
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def password_message(secret):
    body = secret.encode() + b"\0"
    return b"p" + struct.pack("!I", len(body) + 4) + body


def md5_response(user, password, salt):
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


class Conn:
    """One client connection: a socket and the handshake state."""

    __slots__ = ("sock", "buf", "state", "error")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.state = "connecting"
        self.error = None


def handle_messages(conn, args):
    """Consumes whole messages from conn.buf; returns True once the handshake has ended."""
    while len(conn.buf) >= 5:
        tag = conn.buf[0:1]
        (length,) = struct.unpack("!I", conn.buf[1:5])
        if length < 4 or length > 1 << 20:
            conn.error = f"bad length {length}"
            return True
        if len(conn.buf) < length + 1:
            return False
        body = conn.buf[5:length + 1]
        conn.buf = conn.buf[length + 1:]
        if tag == b"R":
            (code,) = struct.unpack("!I", body[:4])
            if code == 5:
                secret = md5_response(args.user, args.password, body[4:8])
                conn.sock.sendall(password_message(secret))
            elif code == 3:
                conn.sock.sendall(password_message(args.password))
            elif code != 0:
                conn.error = f"unsupported authentication request {code}"
                return True
        elif tag == b"E":
            fields = [f[1:].decode(errors="replace") for f in body.split(b"\0") if f]
            conn.error = "server error: " + "; ".join(fields[:4])
            return True
        elif tag == b"Z":
            conn.state = "ready"
            return True
        # S (ParameterStatus), K (BackendKeyData), N (Notice): nothing to do.
    return False


def open_all(args):
    """Returns (ready sockets, failed count, first errors, seconds)."""
    sel = selectors.DefaultSelector()
    ready, errors = [], []
    failed = 0
    started = 0
    in_flight = 0
    t0 = time.monotonic()
    deadline = t0 + args.connect_timeout
    startup = startup_packet(args.user, args.database)

    def fail(conn, why):
        nonlocal failed, in_flight
        failed += 1
        in_flight -= 1
        if len(errors) < 5:
            errors.append(why)
        try:
            sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    while (started < args.count or in_flight) and time.monotonic() < deadline:
        while started < args.count and in_flight < args.concurrency:
            started += 1
            sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
            sock.setblocking(False)
            conn = Conn(sock)
            in_flight += 1
            err = sock.connect_ex((args.host, args.port))
            if err not in (0, 115):  # 115: EINPROGRESS
                fail(conn, f"connect: {os.strerror(err)}")
                continue
            sel.register(sock, selectors.EVENT_WRITE, conn)
        for key, events in sel.select(timeout=0.5):
            conn = key.data
            try:
                if conn.state == "connecting":
                    err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(conn, f"connect: {os.strerror(err)}")
                        continue
                    # Loopback send buffers are large; these small writes never block for long.
                    conn.sock.setblocking(True)
                    conn.sock.sendall(startup)
                    conn.sock.setblocking(False)
                    conn.state = "auth"
                    sel.modify(conn.sock, selectors.EVENT_READ, conn)
                    continue
                data = conn.sock.recv(65536)
                if not data:
                    fail(conn, "connection closed during login")
                    continue
                conn.buf += data
                conn.sock.setblocking(True)
                done = handle_messages(conn, args)
                conn.sock.setblocking(False)
                if done:
                    if conn.error:
                        fail(conn, conn.error)
                    else:
                        sel.unregister(conn.sock)
                        in_flight -= 1
                        ready.append(conn.sock)
            except OSError as e:
                fail(conn, f"{type(e).__name__}: {e}")
    # Whatever is still in flight at the deadline counts as failed.
    for key in list(sel.get_map().values()):
        fail(key.data, "login timed out")
    sel.close()
    return ready, failed, errors, time.monotonic() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", default=os.environ.get("PGPASSWORD", ""))
    p.add_argument("--database", required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--connect-timeout", type=float, default=120.0,
                   help="seconds for all logins together")
    p.add_argument("--hold", type=float, default=120.0,
                   help="seconds to hold the connections at most")
    p.add_argument("--status", required=True, help="where to write the JSON summary")
    args = p.parse_args()

    try:
        addr = ipaddress.ip_address(args.host)
    except ValueError:
        sys.exit(f"--host must be a loopback IP address, got {args.host!r}")
    if not addr.is_loopback:
        sys.exit(f"refusing a non-loopback target {args.host}")

    stop = {"now": False}

    def on_signal(_signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    ready, failed, errors, seconds = open_all(args)
    summary = {"requested": args.count, "connected": len(ready), "failed": failed,
               "errors": errors, "seconds": round(seconds, 3)}
    tmp = args.status + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(summary, f)
    os.replace(tmp, args.status)

    end = time.monotonic() + args.hold
    while not stop["now"] and time.monotonic() < end:
        time.sleep(0.1)
    terminate = b"X\0\0\0\x04"
    for sock in ready:
        try:
            sock.send(terminate)
        except OSError:
            pass
        sock.close()


if __name__ == "__main__":
    main()
