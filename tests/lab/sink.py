"""A loopback SMTP sink that plays "the internet" for the mail lab's Postfix.

Accepts every message and appends it as one JSON line (sender, recipients,
data) to a record file, so tests can see what Postfix relayed. It speaks just
enough ESMTP for Postfix's smtp(8) client. Run as a script by the lab fixture:

    python tests/lab/sink.py --host 127.0.0.1 --port N --record FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

MAX_LINE = 1 << 20


@dataclass(slots=True)
class Envelope:
    mail_from: str | None = None
    rcpt_to: list[str] = field(default_factory=list)


def _address(argument: str) -> str:
    """The address in ``FROM:<a@b> SIZE=1`` or ``TO:<a@b>``."""
    value = argument.split(":", 1)[1].strip() if ":" in argument else argument
    if value.startswith("<"):
        return value[1 : value.find(">")] if ">" in value else value[1:]
    return value.split(" ", 1)[0]


async def _read_data(reader: asyncio.StreamReader) -> str:
    lines: list[bytes] = []
    while True:
        line = await reader.readline()
        if not line or line in (b".\r\n", b".\n"):
            break
        lines.append(line[1:] if line.startswith(b"..") else line)
    return b"".join(lines).decode("utf-8", "replace")


class Sink:
    def __init__(self, record: Path) -> None:
        self.record = record

    def _store(self, envelope: Envelope, data: str) -> None:
        entry = {"mail_from": envelope.mail_from, "rcpt_to": envelope.rcpt_to, "data": data}
        with self.record.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink.example ESMTP lab sink\r\n")
        envelope = Envelope()
        try:
            while line := await reader.readline():
                verb, _, argument = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
                verb = verb.upper()
                if verb == "DATA" and envelope.rcpt_to:
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    self._store(envelope, await _read_data(reader))
                    envelope = Envelope()
                    writer.write(b"250 2.0.0 Ok: queued by lab sink\r\n")
                else:
                    reply, envelope = _answer(verb, argument, envelope)
                    writer.write(reply)
                await writer.drain()
                if verb == "QUIT":
                    break
        finally:
            writer.close()


def _answer(verb: str, argument: str, envelope: Envelope) -> tuple[bytes, Envelope]:
    """The reply to every command but a DATA with recipients, and the envelope after it."""
    if verb in ("EHLO", "HELO"):
        return b"250-sink.example\r\n250-8BITMIME\r\n250 SIZE 10240000\r\n", envelope
    if verb == "MAIL":
        return b"250 2.1.0 Ok\r\n", Envelope(mail_from=_address(argument))
    if verb == "RCPT":
        envelope.rcpt_to.append(_address(argument))
        return b"250 2.1.5 Ok\r\n", envelope
    if verb == "DATA":
        return b"554 5.5.1 Error: no valid recipients\r\n", envelope
    if verb == "RSET":
        return b"250 2.0.0 Ok\r\n", Envelope()
    if verb == "NOOP":
        return b"250 2.0.0 Ok\r\n", envelope
    if verb == "QUIT":
        return b"221 2.0.0 Bye\r\n", envelope
    return b"502 5.5.2 Error: command not recognized\r\n", envelope


async def serve(host: str, port: int, record: Path) -> None:
    sink = Sink(record)
    server = await asyncio.start_server(sink.handle, host, port, limit=MAX_LINE)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.record))


if __name__ == "__main__":
    main()
