# SPDX-License-Identifier: MIT
"""examples/echo and examples/httpd, built for each target under test, run
(under qemu or Wine as the target needs) and answer a client: the echo
server returns what it was sent on several connections at once, the HTTP
server answers a GET with 200 and its body, and a keep-alive connection a
second request. The servers run until they are killed, so each test has a
deadline of its own and kills the server whatever happens."""

import os
import socket
import subprocess
import time

import pytest

from conftest import DEFAULT_TARGETS, read_target

TARGETS = os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port, deadline, proc):
    """A connection to the server, retried until it listens."""
    while True:
        assert proc.poll() is None, f"the server exited {proc.returncode}"
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.1)


def recv_exactly(c, n):
    got = b""
    while len(got) < n:
        chunk = c.recv(n - len(got))
        assert chunk, f"the connection ended after {len(got)} of {n} bytes"
        got += chunk
    return got


@pytest.fixture(params=TARGETS)
def target(request):
    t = read_target(request.param)
    if t.error:
        pytest.fail(f"target {t.name}: {t.error}", pytrace=False)
    return t


def start(t, name, port):
    exe = os.path.join(t.build_dir, name + t.env.get("EXE", ""))
    assert os.path.exists(exe), f"{exe} missing: build it with `make TARGET={t.name}`"
    return subprocess.Popen(t.run_prefix + [exe, f"127.0.0.1:{port}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def stop(proc):
    proc.kill()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        err = b""
    return err.decode(errors="replace")


def test_echo_answers(target):
    port = free_port()
    proc = start(target, "echo", port)
    deadline = time.monotonic() + 60 * target.timeout_mult
    try:
        conns = [connect(port, deadline, proc) for _ in range(8)]
        for round_ in range(20):
            for i, c in enumerate(conns):
                c.sendall(b"%d-%d:" % (i, round_) + bytes([i]) * 1000)
            for i, c in enumerate(conns):
                want = b"%d-%d:" % (i, round_) + bytes([i]) * 1000
                assert recv_exactly(c, len(want)) == want
        for c in conns:
            c.close()
    finally:
        err = stop(proc)
    assert "echo:" not in err, err


def test_httpd_answers(target):
    port = free_port()
    proc = start(target, "httpd", port)
    deadline = time.monotonic() + 60 * target.timeout_mult
    try:
        c = connect(port, deadline, proc)
        req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(2):  # the second on the same connection
            c.sendall(req)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = c.recv(4096)
                assert chunk, f"the connection ended: {head!r}"
                head += chunk
            head, _, body = head.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            assert length, head
            body += recv_exactly(c, length[0] - len(body)) if length[0] > len(body) else b""
            assert len(body) == length[0]
        c.close()
    finally:
        stop(proc)
