"""The receiver as `auto-optimizer webhook serve` runs it, in a process of its own, with its
read timeout set to a second: a client that sends its headers or its body a byte at a time
is cut off (the body with a 408), one that leaves mid-body costs one log line and no
traceback, and two kill -9s lose no acknowledged event."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prefect.settings import PREFECT_API_URL

from optimizer.processes import wait_until_answers
from optimizer.webhook.inbox import Inbox
from tests.process_tree import Command, free_port
from tests.test_webhook import ALERT, AUTH, TOKEN, register_deployments, run_count, wait_until

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.slow]
OPTIMIZER = str(Path(sys.executable).parent / "auto-optimizer")
# A byte this often: each request below would take half a minute or more to send in full.
TRICKLE_S = 0.25
SOURCE = "/sentinel/anomaly-detector"


class Receiver:
    """`webhook serve` on a port of its own, its data in `folder`; each start logs to a file
    of its own, and starts on the same port and inbox as the last."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.inbox = folder / "data" / "webhook" / "inbox.sqlite"
        self.starts = 0
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("AUTO_OPTIMIZER_")}
        self.env |= {"AUTO_OPTIMIZER_DATA_DIR": str(folder / "data"), "AUTO_OPTIMIZER_WEBHOOK_TOKEN": TOKEN,
                     "AUTO_OPTIMIZER_WEBHOOK_READ_TIMEOUT_S": "1", "PREFECT_API_URL": str(PREFECT_API_URL.value())}

    @property
    def log(self) -> Path:
        return self.folder / f"receiver-{self.starts}.log"

    @contextlib.contextmanager
    def running(self) -> Iterator[Command]:
        self.starts += 1
        with Command([OPTIMIZER, "webhook", "serve", "--port", str(self.port)], env=self.env, log=self.log) as command:
            wait_until_answers(f"{self.url}/health", 60, process=command.process)
            yield command

    def log_since(self, offset: int) -> str:
        return self.log.read_bytes()[offset:].decode(errors="replace")


@pytest.fixture(scope="module")
def receiver(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    served = Receiver(tmp_path_factory.mktemp("receiver"))
    with served.running():
        yield served


def trickle(receiver: Receiver, at_once: bytes, slowly: bytes) -> tuple[int, bytes, bool]:
    """Send `at_once`, then `slowly` a byte at a time until the receiver closes the
    connection: how many bytes of `slowly` went, what came back, and whether it was closed
    before the last byte."""
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.settimeout(TRICKLE_S)
        sock.sendall(at_once)
        for byte in slowly:
            try:
                sock.sendall(bytes([byte]))
                sent += 1
                chunk = sock.recv(4096)  # waits TRICKLE_S when nothing comes: the pace
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                return sent, answer, True
            if not chunk:
                return sent, answer, True
            answer += chunk
    return sent, answer, False


def head(*lines: str) -> bytes:
    return "".join(f"{line}\r\n" for line in ["POST /events HTTP/1.1", "Host: 127.0.0.1", *lines]).encode()


def test_headers_sent_a_byte_at_a_time_are_cut_off(receiver: Receiver) -> None:
    offset = receiver.log.stat().st_size
    request = head(f"X-Padding: {'a' * 100}") + b"\r\n"
    sent, answer, closed = trickle(receiver, b"", request)
    assert closed and answer == b"" and sent < len(request) / 2
    wait_until(lambda: "a request's headers did not arrive within 1 s" in receiver.log_since(offset), "the line logged")


def test_a_body_sent_a_byte_at_a_time_is_answered_408(receiver: Receiver) -> None:
    body = b"x" * 120
    request = head(f"Authorization: {AUTH['Authorization']}", "Content-Type: application/cloudevents+json",
                   f"Content-Length: {len(body)}") + b"\r\n"
    sent, answer, closed = trickle(receiver, request, body)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"the body did not arrive within 1 s" in answer
    assert closed and sent < len(body) / 2


def test_bytes_still_coming_after_an_answer_are_cut_off(receiver: Receiver) -> None:
    """Refused for its token before its body is read, a request's body still counts against
    the deadline: a client cannot keep the connection by trickling the rest of it."""
    body = b"x" * 120
    request = head("Content-Type: application/cloudevents+json", f"Content-Length: {len(body)}") + b"\r\n"
    offset = receiver.log.stat().st_size
    sent, answer, closed = trickle(receiver, request, body)
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert closed and sent < len(body) / 2
    wait_until(lambda: "the rest of a request already answered did not arrive within 1 s" in receiver.log_since(offset),
               "the line logged")


def test_a_client_gone_mid_body_is_one_log_line_without_a_token(receiver: Receiver) -> None:
    """A plain JSON body is read before its Sentinel signature is checked, so this needs no
    credential: each such disconnect used to log a 57-line traceback."""
    offset = receiver.log.stat().st_size
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
            sock.sendall(head("Content-Type: application/json", "Content-Length: 1000") + b"\r\n" + b'{"event_type"')
            time.sleep(0.2)  # the receiver is reading the body when the client goes
    gone = "disconnected before sending the whole body of POST /events"
    wait_until(lambda: receiver.log_since(offset).count(gone) == 5, "five disconnects logged")
    time.sleep(1)  # anything else they would log comes with or just after their line
    logged = receiver.log_since(offset)
    assert "Traceback" not in logged
    assert len(logged.splitlines()) == 5, logged


SENDERS, EVENTS_EACH = 4, 20


def test_two_kill_9s_lose_no_acknowledged_event(tmp_path: Path) -> None:
    """Four senders, each resending an event until it is answered (as a platform retries);
    the receiver is killed twice while they send and started again on the same inbox. Every
    event answered 202 or 200 ends up with exactly one flow run."""
    register_deployments()
    before = run_count("anomaly-response")
    receiver = Receiver(tmp_path)
    events = SENDERS * EVENTS_EACH
    acknowledged: set[str] = set()
    guard = threading.Lock()

    def send(sender: int) -> None:
        with httpx.Client(timeout=10) as client:
            for n in range(EVENTS_EACH):
                event = {"specversion": "1.0", "id": f"kill-{sender}-{n}", "source": SOURCE,
                         "type": "io.llm-platform.sentinel.alert", "data": ALERT}
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        reply = client.post(f"{receiver.url}/events", content=json.dumps(event),
                                            headers={"Content-Type": "application/cloudevents+json", **AUTH})
                        if reply.status_code in (200, 202):
                            with guard:
                                acknowledged.add(event["id"])
                            break
                    time.sleep(0.05)

    senders = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(SENDERS)]
    with contextlib.ExitStack() as stack:
        process = stack.enter_context(receiver.running())
        for thread in senders:
            thread.start()
        for target in (events // 4, events * 5 // 8):  # a kill early on, one after more than half
            wait_until(lambda target=target: len(acknowledged) >= target, f"{target} events acknowledged", 120)
            os.kill(process.pid, signal.SIGKILL)
            process.process.wait(timeout=10)
            process = stack.enter_context(receiver.running())
        for thread in senders:
            thread.join(timeout=180)
        assert len(acknowledged) == events
        wait_until(lambda: not Inbox(receiver.inbox).unstarted(), "every accepted event's run started", 180)
    inbox = Inbox(receiver.inbox)
    assert inbox.count() == events
    assert all((entry := inbox.get(SOURCE, event_id)) and entry.flow_run_id for event_id in acknowledged)
    assert run_count("anomaly-response") - before == events
