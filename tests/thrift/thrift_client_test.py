#!/usr/bin/env python3
"""Python client against treatyd's Thrift front end (CoordinatorService).

Generates the Python code from idl/ with `thrift --gen py` into a temporary
folder (proving the IDL is usable outside C++), starts treatyd on a fresh
SQLite store with HTTP and Thrift on free ports and a tiny HTTP participant,
then: submits a saga, runs a 2PC, checks typed exceptions (InvalidRequest,
NotFound, Conflict) and that malformed frames never take the server down.
treatyd runs with --auth-tokens: the client authenticates with a token, and
a connection that does not (or whose token is wrong, or lacks a role) is
refused with Unauthenticated (or Forbidden).

usage: thrift_client_test.py TREATYD IDL_DIR THRIFT_COMPILER
"""

import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time


def main():
    treatyd, idl_dir, thrift_bin = sys.argv[1:4]
    work = tempfile.mkdtemp(prefix="treaty-py-")
    proc = None
    try:
        gen = os.path.join(work, "gen")
        os.makedirs(gen)
        for idl in ("coordinator.thrift", "participant.thrift"):
            subprocess.check_call([thrift_bin, "--gen", "py", "-out", gen,
                                   os.path.join(idl_dir, idl)])
        sys.path.insert(0, gen)
        from thrift.protocol import TBinaryProtocol
        from thrift.transport import TSocket, TTransport
        from treaty.coordinator import CoordinatorService
        from treaty.coordinator.ttypes import (Begin2pcRequest, Branch2pc, Conflict, Forbidden,
                                               InvalidRequest, ListRequest, NotFound,
                                               SagaRequest, SagaStep, Unauthenticated)

        # Clients of this coordinator: NAME ROLES SHA256HEX (docs/security.md).
        token = "py-token-" + os.urandom(16).hex()
        read_token = "py-read-token-" + os.urandom(16).hex()
        tokens = os.path.join(work, "tokens")
        with open(tokens, "w") as f:
            f.write("py-client submit,read,operate %s\n" % hashlib.sha256(token.encode()).hexdigest())
            f.write("py-reader read %s\n" % hashlib.sha256(read_token.encode()).hexdigest())

        calls = []

        class Participant(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                calls.append((self.headers.get("Treaty-Gtid"), self.headers.get("Treaty-Branch"),
                              self.headers.get("Treaty-Op"), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        participant = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Participant)
        threading.Thread(target=participant.serve_forever, daemon=True).start()
        purl = "http://127.0.0.1:%d" % participant.server_address[1]

        proc = subprocess.Popen(
            [treatyd, "--store", "sqlite:" + os.path.join(work, "t.db"), "--http", "127.0.0.1:0",
             "--thrift", "127.0.0.1:0", "--auth-tokens", tokens, "--log-level", "warn"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = proc.stdout.readline()
        m = re.search(r"thrift [0-9.]+:(\d+)", line)
        assert m, "no thrift address in: %r" % line
        port = int(m.group(1))

        def client(with_token=token):
            sock = TSocket.TSocket("127.0.0.1", port)
            sock.setTimeout(20000)
            transport = TTransport.TFramedTransport(sock)
            transport.open()
            c = CoordinatorService.Client(TBinaryProtocol.TBinaryProtocol(transport))
            if with_token is not None:
                c.authenticate(with_token)
            return c, transport

        def expect(exc, fn, *args):
            try:
                fn(*args)
            except exc as e:
                assert e.message, e
                return
            raise AssertionError("expected %s from %s%r" % (exc.__name__, fn.__name__, args))

        # Without a token nothing is answered but Unauthenticated; a wrong
        # token is refused; a read-only client may read, not submit.
        anon, t_anon = client(with_token=None)
        expect(Unauthenticated, anon.getTransaction, "py-saga-1")
        expect(Unauthenticated, anon.listTransactions, ListRequest())
        expect(Unauthenticated, anon.submitSaga, SagaRequest(steps=[]))
        expect(Unauthenticated, anon.authenticate, "not-the-token")
        t_anon.close()
        reader, t_reader = client(with_token=read_token)
        reader.listTransactions(ListRequest())
        expect(Forbidden, reader.submitSaga, SagaRequest(steps=[]))
        expect(Forbidden, reader.retryTransaction, "py-saga-1", "")
        t_reader.close()

        c, transport = client()

        # A saga, waiting for its end.
        steps = [SagaStep(name=n, action=purl + "/" + n + "/action",
                          compensate=purl + "/" + n + "/compensate",
                          payload=json.dumps({"step": n})) for n in ("flight", "hotel")]
        st = c.submitSaga(SagaRequest(gtid="py-saga-1", steps=steps, wait=True))
        assert (st.gtid, st.state) == ("py-saga-1", "COMMITTED"), st
        txn = c.getTransaction("py-saga-1")
        assert txn.kind == "saga" and [b.state for b in txn.branches] == ["SUCCEEDED"] * 2, txn
        assert ("py-saga-1", "flight", "action", ) == calls[0][:3], calls
        assert calls[0][3]["payload"] == {"step": "flight"}, calls[0]

        # A 2PC with two branches.
        st = c.begin2pc(Begin2pcRequest(gtid="py-2pc-1", timeout_ms=30000))
        assert st.state == "ACTIVE", st
        for n in ("a", "b"):
            c.registerBranch("py-2pc-1", Branch2pc(name=n, prepare=purl + "/" + n + "/p",
                                                   commit=purl + "/" + n + "/c",
                                                   abort=purl + "/" + n + "/x", payload="{}"))
        st = c.commit2pc("py-2pc-1")
        assert st.state in ("COMMITTED", "COMMITTING"), st
        for _ in range(200):
            if c.getTransaction("py-2pc-1").state == "COMMITTED":
                break
            time.sleep(0.05)
        txn = c.getTransaction("py-2pc-1")
        assert txn.state == "COMMITTED" and txn.kind == "2pc", txn
        ops = sorted((b, op) for g, b, op, _ in calls if g == "py-2pc-1")
        assert ops == [("a", "commit"), ("a", "prepare"), ("b", "commit"), ("b", "prepare")], ops
        page = c.listTransactions(ListRequest(kind="2pc", limit=10))
        assert [t.gtid for t in page.items] == ["py-2pc-1"], page

        # Typed errors.
        expect(NotFound, c.getTransaction, "no-such-gtid")
        expect(NotFound, c.commit2pc, "no-such-gtid")
        expect(InvalidRequest, c.getTransaction, "bad gtid")
        expect(InvalidRequest, c.submitSaga, SagaRequest(steps=[]))
        expect(InvalidRequest, c.begin2pc, Begin2pcRequest(timeout_ms=-5))
        expect(InvalidRequest, c.registerBranch, "py-2pc-1",
               Branch2pc(name="z", prepare="ftp://x", commit="ftp://x", abort="ftp://x"))
        expect(InvalidRequest, c.registerBranch, "py-2pc-1",
               Branch2pc(name="z", prepare=purl, commit=purl, abort=purl, payload="{not json"))
        expect(Conflict, c.registerBranch, "py-2pc-1",
               Branch2pc(name="late", prepare=purl, commit=purl, abort=purl))
        expect(Conflict, c.begin2pc, Begin2pcRequest(gtid="py-saga-1"))
        expect(Conflict, c.abortTransaction, "py-2pc-1", "")

        # Malformed input: garbage frames, a huge frame, a cut connection.
        for junk in (struct.pack(">i", 12) + b"\x00garbage!!!", struct.pack(">i", 1 << 30) + b"xx",
                     b"\xff\xff"):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(junk)
            s.settimeout(2)
            try:
                s.recv(100)
            except (socket.timeout, ConnectionError):
                pass
            s.close()
        c2, t2 = client()
        assert c2.getTransaction("py-2pc-1").state == "COMMITTED"
        t2.close()
        transport.close()
        assert proc.poll() is None, "treatyd died"
        print("thrift python client: OK")
        return 0
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
