"""The lab itself works: real Postfix and Dovecot, with stand-in hook servers.

The stand-ins are the simplest servers each hook accepts -- a policy server
that always says DUNNO, a socketmap that never finds anything, an auth-policy
server that always allows -- and they record what they were asked. If these
tests fail, the enforcement tests cannot mean anything.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.lab.clients import (
    ImapSession,
    Submission,
    fresh_client_ip,
    imap_login,
    pop3_login,
    submit,
)
from tests.support.mail_lab import MailLab, log_offset

pytestmark = pytest.mark.mail_lab

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class StandInHooks:
    """The three hook servers on the lab's hook ports, in a thread with its own event loop.

    Postfix and Dovecot keep hook connections open between requests, so
    stopping must close every accepted connection, not just the listeners:
    otherwise a later test's real adapter would never be asked.
    """

    lab: MailLab
    policy_requests: list[dict[str, str]] = field(default_factory=list)
    socketmap_queries: list[str] = field(default_factory=list)
    authpolicy_requests: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _servers: list[asyncio.Server] = field(default_factory=list)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    _thread: threading.Thread | None = None

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("stand-in hook servers did not start")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._listen())
        ready.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        ports = self.lab.ports
        for handler, port in (
            (self._policy, ports.policy),
            (self._socketmap, ports.socketmap),
            (self._authpolicy, ports.authpolicy),
        ):
            self._servers.append(
                await asyncio.start_server(self._tracked(handler), self.lab.host, port)
            )

    def _tracked(self, handler: Handler) -> Handler:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.add(writer)
            try:
                await handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                self._writers.discard(writer)
                writer.close()

        return serve

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for server in self._servers:
            await server.wait_closed()

    async def _policy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request: dict[str, str] = {}
        while line := await reader.readline():
            name, _, value = line.decode().rstrip("\n").partition("=")
            if name:
                request[name] = value
                continue
            self.policy_requests.append(request)
            request = {}
            writer.write(b"action=DUNNO\n\n")
            await writer.drain()

    async def _socketmap(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            length = await reader.readuntil(b":")
            payload = await reader.readexactly(int(length[:-1]) + 1)
            self.socketmap_queries.append(payload[:-1].decode())
            writer.write(b"9:NOTFOUND ,")
            await writer.drain()

    async def _authpolicy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request_line := await reader.readline():
            headers: dict[str, str] = {}
            while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = header.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            command = request_line.decode().split(" ")[1].partition("command=")[2]
            self.authpolicy_requests.append((command, json.loads(body)))
            answer = b'{"status":0,"msg":""}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
            )
            await writer.drain()


@pytest.fixture(scope="module")
def hooks(mail_lab: MailLab) -> Iterator[StandInHooks]:
    stand_ins = StandInHooks(mail_lab)
    stand_ins.start()
    try:
        yield stand_ins
    finally:
        stand_ins.stop()


ALICE = "alice@mailwarden.test"
BOB = "bob@mailwarden.test"
CAROL = "carol@mailwarden.test"


def test_authenticated_submission_reaches_the_sink(mail_lab: MailLab, hooks: StandInHooks) -> None:
    ip = fresh_client_ip()
    since = log_offset(mail_lab.postfix_log)
    message = Submission(ALICE, ["friend@example.net"], subject=f"smoke {ip}")

    outcome = submit(
        mail_lab.host, mail_lab.ports.submission, ip, ALICE, mail_lab.password(ALICE), message
    )

    assert outcome.accepted, outcome
    assert outcome.tls_version == "TLSv1.3"
    relayed = mail_lab.wait_for_sink(lambda m: message.message_id in str(m["data"]))
    assert relayed["rcpt_to"] == ["friend@example.net"]
    assert relayed["mail_from"] == ALICE
    mail_lab.wait_for_log(
        mail_lab.postfix_log,
        lambda line: f"client=unknown[{ip}], sasl_method=PLAIN, sasl_username={ALICE}" in line,
        since=since,
    )
    mail_lab.wait_for_log(
        mail_lab.postfix_log,
        lambda line: "to=<friend@example.net>" in line and "status=sent" in line,
        since=since,
    )
    asked = [r for r in hooks.policy_requests if r.get("client_address") == ip]
    assert [r["protocol_state"] for r in asked] == ["RCPT", "END-OF-MESSAGE"]
    assert {r["sasl_username"] for r in asked} == {ALICE}
    assert asked[0]["encryption_protocol"] == "TLSv1.3"
    smtp_auth = [b for c, b in hooks.authpolicy_requests if b.get("remote") == ip]
    assert smtp_auth and {b["protocol"] for b in smtp_auth} == {"smtp"}


def test_smtps_with_auth_login_over_tls12(mail_lab: MailLab, hooks: StandInHooks) -> None:
    ip = fresh_client_ip()
    message = Submission(BOB, ["colleague@example.net"])

    outcome = submit(
        mail_lab.host,
        mail_lab.ports.smtps,
        ip,
        BOB,
        mail_lab.password(BOB),
        message,
        starttls=None,
        wrapper_tls="TLSv1.2",
        mechanism="LOGIN",
    )

    assert outcome.accepted, outcome
    assert outcome.tls_version == "TLSv1.2"
    mail_lab.wait_for_sink(lambda m: message.message_id in str(m["data"]))
    contexts = {r["policy_context"] for r in hooks.policy_requests if r.get("client_address") == ip}
    assert contexts == {"smtps"}


def test_socketmap_port_asks_the_sasl_access_map(mail_lab: MailLab, hooks: StandInHooks) -> None:
    ip = fresh_client_ip()
    message = Submission(CAROL, ["someone@example.net"])

    outcome = submit(
        mail_lab.host, mail_lab.ports.submission_map, ip, CAROL, mail_lab.password(CAROL), message
    )

    assert outcome.accepted, outcome
    assert f"{mail_lab.socketmap_name} {CAROL}" in hooks.socketmap_queries
    mail_lab.wait_for_sink(lambda m: message.message_id in str(m["data"]))


def test_imap_and_pop3_logins_work(mail_lab: MailLab, hooks: StandInHooks) -> None:
    imap_ip, pop3_ip = fresh_client_ip(), fresh_client_ip()
    since = log_offset(mail_lab.dovecot_log)

    imap = imap_login(
        mail_lab.host,
        mail_lab.ports.imap,
        imap_ip,
        ALICE,
        mail_lab.password(ALICE),
        starttls="TLSv1.2",
    )
    pop3 = pop3_login(
        mail_lab.host,
        mail_lab.ports.pop3s,
        pop3_ip,
        BOB,
        mail_lab.password(BOB),
        implicit_tls="TLSv1.3",
    )

    assert imap.ok, imap
    assert pop3.ok, pop3
    mail_lab.wait_for_log(
        mail_lab.dovecot_log,
        lambda line: (
            "imap-login: Info: Login:" in line
            and f"user=<{ALICE}>" in line
            and f"rip={imap_ip}," in line
        ),
        since=since,
    )
    mail_lab.wait_for_log(
        mail_lab.dovecot_log,
        lambda line: "pop3-login: Info: Login:" in line and f"rip={pop3_ip}," in line,
        since=since,
    )
    allows = [
        b for c, b in hooks.authpolicy_requests if c == "allow" and b.get("remote") == imap_ip
    ]
    assert allows and allows[0]["login"] == ALICE and allows[0]["protocol"] == "imap"


def test_a_bad_password_is_refused(mail_lab: MailLab, hooks: StandInHooks) -> None:
    ip = fresh_client_ip()
    since = log_offset(mail_lab.dovecot_log)

    outcome = imap_login(mail_lab.host, mail_lab.ports.imap, ip, CAROL, "not-her-password")

    assert not outcome.ok
    assert "AUTHENTICATIONFAILED" in outcome.text
    mail_lab.wait_for_log(
        mail_lab.dovecot_log,
        lambda line: f"passwd-file({CAROL},{ip}," in line and "Password mismatch" in line,
        since=since,
    )
    reports = [b for c, b in hooks.authpolicy_requests if c == "report" and b.get("remote") == ip]
    assert reports and reports[0]["success"] is False


def test_doveadm_kick_ends_an_idle_session(mail_lab: MailLab, hooks: StandInHooks) -> None:
    ip = fresh_client_ip()
    session = ImapSession(mail_lab.host, mail_lab.ports.imap, ip)
    assert session.login(BOB, mail_lab.password(BOB)).ok
    session.select_inbox()

    who = mail_lab.doveadm("who", "-1")
    assert any(BOB in row and ip in row for row in who.stdout.splitlines()), who.stdout
    assert session.idle().startswith("+")

    mail_lab.doveadm("kick", BOB)
    lines, ended = session.wait_until_closed(timeout=10)

    assert ended is not None, lines
    assert any(line.startswith("* BYE") for line in lines), lines
