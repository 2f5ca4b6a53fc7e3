"""QuickFIX's acceptance suite (`.def` files) against our session layer.

Two halves:
- the engine under test: `acceptance_config(begin_string)` and `AcceptanceApplication`, an
  acceptor set up like QuickFIX's acceptance-test engine (SenderCompID ISLD, TargetCompID
  TW44/TW42, ResetOnLogon; echoes NewOrderSingle (35=D) unless it is a PossResend (97=Y) of a
  ClOrdID already seen, echoes SecurityDefinition (35=d), answers any other application
  message with BusinessMessageReject 35=j 380=3). `brokerflow fix-test-acceptor` serves it.
- the runner: `run_def` plays one `.def` file as the client (see DEF_FORMAT.md in the suite:
  `<TIME>` substitution, fixify of BodyLength/CheckSum, framing by BodyLength) and compares
  what the engine sends in "map" mode (QuickFIX/J's: fields as a tag->value map, 9/10/52/60/122
  values ignored, 58 by prefix) or "strict" mode (QuickFIX C++'s: same fields in the same
  order, BodyLength exact, fields.fmt regexes for 10/42/52/60/122).

Run by hand (each .def gets its own in-process acceptor on a free port, all concurrently):
    python -m connectors.fix.acceptance ../shared/fix-acceptance/server/fix44 --mode both
or against a running acceptor (one .def at a time, since they share CompIDs):
    python -m connectors.fix.acceptance FILE.def --port 9880
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from connectors.fix.session.config import SessionConfig
from connectors.fix.session.engine import Acceptor
from connectors.fix.session.state import SessionState, UnsupportedMessageType
from connectors.fix.session.wire import Message

SOH = b"\x01"
SUITE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "fix-acceptance"
READ_TIMEOUT_S = 12.0  # longest wait for an expected message (6_SendTestRequest: 6 s gaps)
DISCONNECT_TIMEOUT_S = 10.0
MODES = ("map", "strict")
_MAP_IGNORED = frozenset((b"9", b"10", b"52", b"60", b"122"))
_TIME = re.compile(rb"<TIME([+-]\d+)?>")
_CONNECTION_LINE = re.compile(rb"^(?:(\d),)?(CONNECT|DISCONNECT)$")
_DEFAULT_FORMATS = {
    b"10": rb"\d{3}",
    b"42": rb"\d{8}-\d{2}:\d{2}:\d{2}",
    b"52": rb"\d{8}-\d{2}:\d{2}:\d{2}|\d{8}-\d{2}:\d{2}:\d{2}[.]\d{3}",
    b"60": rb"\d{8}-\d{2}:\d{2}:\d{2}",
    b"122": rb"\d{8}-\d{2}:\d{2}:\d{2}",
}


# --------------------------------------------------------------------------- engine under test
def acceptance_config(begin_string: str = "FIX.4.4", dictionary: str = "") -> SessionConfig:
    """The acceptance-test engine's session: ISLD <- TW44 (TW42 for FIX.4.2), ResetOnLogon."""
    target = {"FIX.4.2": "TW42", "FIX.4.4": "TW44"}.get(begin_string)
    if target is None:
        msg = f"the acceptance suite has FIX.4.2 and FIX.4.4 sessions, not {begin_string}"
        raise ValueError(msg)
    return SessionConfig(
        sender_comp_id="ISLD", target_comp_id=target, begin_string=begin_string,
        role="acceptor", reset_on_logon=True, dictionary=dictionary,
        name=f"acceptance-{begin_string}",
    )


class AcceptanceApplication:
    """QuickFIX's at_application: echo 35=D (but not a PossResend already seen) and 35=d."""

    def __init__(self) -> None:
        self.seen_cl_ord_ids: set[bytes] = set()

    def __call__(self, session: SessionState, message: Message) -> None:
        msg_type = message.msg_type
        if msg_type == b"D":
            cl_ord_id = message.get(11) or b""
            if message.get(97) == b"Y" and cl_ord_id in self.seen_cl_ord_ids:
                return
            self.seen_cl_ord_ids.add(cl_ord_id)
        elif msg_type != b"d":
            raise UnsupportedMessageType
        body = message.body()
        dictionary = session.dictionary
        has_groups = dictionary is not None and any(
            dictionary.types.get(tag) == "NUMINGROUP" and value not in (b"0", b"")
            for tag, value in body
        )
        if not has_groups:
            body.sort(key=lambda field: field[0])  # QuickFIX writes body fields by tag number
        session.send(msg_type, body, message.header_extras(), now=time.time())


def acceptance_acceptor(begin_string: str, dictionary: str = "") -> Acceptor:
    """An `Acceptor` serving the acceptance-test session for `begin_string`."""
    return Acceptor(
        [acceptance_config(begin_string, dictionary)],
        application=lambda config: AcceptanceApplication(),
    )


# --------------------------------------------------------------------------- .def files
@dataclass(frozen=True, slots=True)
class Step:
    """One line of a .def file: action is connect, disconnect, expect_disconnect, send, expect."""

    action: str
    connection: int
    text: bytes
    line: int


def parse_def(path: Path) -> list[Step]:
    """The steps of a .def file, in order (comments and blank lines dropped)."""
    steps: list[Step] = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if not line or line.startswith(b"#"):
            continue
        kind, rest = line[:1], line[1:]
        if kind in (b"i", b"e"):
            match = _CONNECTION_LINE.match(rest.strip())
            if match is None:
                msg = f"{path.name}:{number}: unknown action {line[:40]!r}"
                raise ValueError(msg)
            connection = int(match.group(1) or 1)
            verb = match.group(2)
            if kind == b"i":
                action = "connect" if verb == b"CONNECT" else "disconnect"
            else:
                action = "wait_connect" if verb == b"CONNECT" else "expect_disconnect"
            steps.append(Step(action, connection, b"", number))
        elif kind in (b"I", b"E"):
            connection = 1
            if len(rest) > 2 and rest[:1].isdigit() and rest[1:2] == b",":
                connection, rest = int(rest[:1]), rest[2:]
            steps.append(Step("send" if kind == b"I" else "expect", connection, rest, number))
        else:
            msg = f"{path.name}:{number}: unknown action {line[:40]!r}"
            raise ValueError(msg)
    return steps


def substitute_time(text: bytes, now: float) -> bytes:
    """`<TIME>`, `<TIME+n>`, `<TIME-n>` -> UTC `YYYYMMDD-HH:MM:SS` (seconds, as the C++ runner)."""

    def replace(match: re.Match[bytes]) -> bytes:
        offset = int(match.group(1) or 0)
        return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(now + offset)).encode()

    return _TIME.sub(replace, text)


def fixify(message: bytes) -> bytes:
    """Insert BodyLength (9) and append CheckSum (10) where the line leaves them out."""
    if not message.startswith(b"8="):
        return message
    if b"\x019=" not in message:
        first = message.index(SOH) + 1
        mark = message.find(b"\x0110=")
        body_end = mark + 1 if mark >= 0 else len(message)
        message = message[:first] + b"9=%d\x01" % (body_end - first) + message[first:]
    if re.search(rb"\x0110=[^\x01]*\x01$", message) is None:
        message += b"10=%03d\x01" % (sum(message) & 0xFF)
    return message


def _fields(message: bytes) -> list[tuple[bytes, bytes]]:
    return [tuple(item.split(b"=", 1)) if b"=" in item else (item, b"")  # type: ignore[misc]
            for item in message.split(SOH) if item]


def compare_map(expected: bytes, received: bytes) -> str:
    """QuickFIX/J's comparison; return "" on a match, else what differs."""
    want = dict(_fields(expected))
    got = dict(_fields(received))
    if want.get(b"35") != got.get(b"35"):
        return f"MsgType {_s(got.get(b'35'))}, expected {_s(want.get(b'35'))}"
    problems = []
    for tag, value in want.items():
        if tag not in got:
            problems.append(f"{_s(tag)} missing")
        elif tag in _MAP_IGNORED:
            continue
        elif tag == b"58":
            if not got[tag].startswith(value):
                problems.append(f"58={_s(got[tag])}, expected prefix {_s(value)}")
        elif got[tag] != value:
            problems.append(f"{_s(tag)}={_s(got[tag])}, expected {_s(value)}")
    problems.extend(f"unexpected {_s(tag)}={_s(got[tag])}" for tag in got if tag not in want)
    same_lengths = all(
        len(got.get(tag, b"")) == len(want[tag]) for tag in (b"52", b"60", b"122") if tag in want
    )
    if not problems and same_lengths and want.get(b"9") != got.get(b"9"):
        problems.append(f"9={_s(got.get(b'9'))}, expected {_s(want.get(b'9'))}")
    return "; ".join(problems)


def compare_strict(
    expected: bytes, received: bytes, formats: dict[bytes, bytes] | None = None
) -> str:
    """QuickFIX C++'s Comparator; return "" on a match, else the first difference."""
    formats = formats or _DEFAULT_FORMATS
    want = _fields(expected)
    got = _fields(received)
    if len(want) != len(got):
        return f"{len(got)} fields, expected {len(want)}"
    for (want_tag, want_value), (got_tag, got_value) in zip(want, got, strict=True):
        if want_tag != got_tag:
            return f"tag {_s(got_tag)} where {_s(want_tag)} was expected"
        pattern = formats.get(want_tag)
        if pattern is not None:
            if re.search(pattern, got_value) is None:
                return f"{_s(got_tag)}={_s(got_value)} does not match /{_s(pattern)}/"
        elif want_value != got_value:
            return f"{_s(got_tag)}={_s(got_value)}, expected {_s(want_value)}"
    return ""


def load_formats(suite_dir: Path) -> dict[bytes, bytes]:
    """fields.fmt of the suite (tag=regex per line), else the copy of its five lines above."""
    path = suite_dir / "fields.fmt"
    if not path.exists():
        return dict(_DEFAULT_FORMATS)
    formats = {}
    for line in path.read_bytes().splitlines():
        tag, sep, pattern = line.partition(b"=")
        if sep:
            formats[tag.strip()] = pattern
    return formats


def _s(value: bytes | None) -> str:
    return "(none)" if value is None else value.replace(SOH, b"|").decode("ascii", "replace")


# --------------------------------------------------------------------------- runner
@dataclass(slots=True)
class DefResult:
    """How one .def file went."""

    name: str
    mode: str
    passed: bool
    detail: str
    seconds: float


async def _read_message(reader: asyncio.StreamReader) -> bytes:
    """Read one message framed by BodyLength, as FixParser.rb does."""
    head = await reader.readuntil(b"\x019=")
    length = await reader.readuntil(SOH)
    body = await reader.readexactly(int(length[:-1]))
    trailer = await reader.readuntil(SOH)
    return head + length + body + trailer


async def run_def(
    path: Path, host: str, port: int, mode: str = "map",
    formats: dict[bytes, bytes] | None = None,
) -> DefResult:
    """Play one .def file against the engine at host:port."""
    started = time.monotonic()
    connections: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    def result(passed: bool, detail: str = "") -> DefResult:
        return DefResult(path.name, mode, passed, detail, time.monotonic() - started)

    try:
        for step in parse_def(path):
            where = f"line {step.line}"
            if step.action == "connect":
                connections[step.connection] = await asyncio.open_connection(host, port)
            elif step.action == "disconnect":
                _reader, writer = connections.pop(step.connection)
                writer.close()
            elif step.action == "wait_connect":
                return result(False, f"{where}: eCONNECT (server mode) is not supported")
            elif step.action == "send":
                _reader, writer = connections[step.connection]
                writer.write(fixify(substitute_time(step.text, time.time())))
                await writer.drain()
            elif step.action == "expect":
                reader, _writer = connections[step.connection]
                expected = fixify(substitute_time(step.text, time.time()))
                try:
                    received = await asyncio.wait_for(_read_message(reader), READ_TIMEOUT_S)
                except TimeoutError:
                    return result(False, f"{where}: nothing received, expected {_s(expected)}")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return result(False, f"{where}: disconnected, expected {_s(expected)}")
                if mode == "map":
                    problem = compare_map(expected, received)
                else:
                    problem = compare_strict(expected, received, formats)
                if problem:
                    return result(False, f"{where}: {problem}\n  expected {_s(expected)}\n"
                                         f"  received {_s(received)}")
            elif step.action == "expect_disconnect":
                reader, writer = connections.pop(step.connection)
                try:
                    data = await asyncio.wait_for(reader.read(1), DISCONNECT_TIMEOUT_S)
                except TimeoutError:
                    return result(False, f"{where}: still connected after "
                                         f"{DISCONNECT_TIMEOUT_S:g} s")
                except ConnectionError:
                    data = b""
                if data:
                    rest = await asyncio.wait_for(reader.read(4096), 0.5)
                    return result(False, f"{where}: expected disconnection, got data "
                                         f"{_s(data + rest)}")
                writer.close()
        return result(True)
    except (OSError, ValueError) as exc:
        return result(False, f"{type(exc).__name__}: {exc}")
    finally:
        for _reader, writer in connections.values():
            writer.close()


def _begin_string_of(path: Path) -> str:
    return "FIX.4.2" if "fix42" in path.parts or "FIX.4.2" in path.read_text("latin-1") else (
        "FIX.4.4"
    )


async def run_with_own_acceptor(
    path: Path, mode: str, formats: dict[bytes, bytes] | None = None
) -> DefResult:
    """Start an in-process acceptor on a free port just for this .def, run it, stop it."""
    acceptor = acceptance_acceptor(_begin_string_of(path))
    port = await acceptor.start("127.0.0.1", 0)
    try:
        return await run_def(path, "127.0.0.1", port, mode, formats)
    finally:
        await acceptor.close()


async def run_suite(
    paths: Sequence[Path], modes: Sequence[str] = ("map",), concurrency: int = 128
) -> list[DefResult]:
    """Every .def in every mode, concurrently, each against its own acceptor."""
    semaphore = asyncio.Semaphore(concurrency)
    formats = load_formats(paths[0].parents[2]) if paths else None

    async def one(path: Path, mode: str) -> DefResult:
        async with semaphore:
            return await run_with_own_acceptor(path, mode, formats)

    return list(await asyncio.gather(*(one(p, m) for m in modes for p in paths)))


def def_files(targets: Sequence[Path]) -> list[Path]:
    """The .def files named, or found directly inside the directories named."""
    files: list[Path] = []
    for target in targets:
        files.extend(sorted(target.glob("*.def")) if target.is_dir() else [target])
    return files


def summarize(results: Sequence[DefResult]) -> str:
    """One line per mode: passed/total, plus the failures."""
    lines = []
    for mode in MODES:
        of_mode = [r for r in results if r.mode == mode]
        if not of_mode:
            continue
        passed = sum(r.passed for r in of_mode)
        lines.append(f"{mode} mode: {passed}/{len(of_mode)} .def files pass")
        lines.extend(
            f"  FAIL {r.name}: {r.detail}" for r in of_mode if not r.passed
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.fix.acceptance",
        description="Run QuickFIX acceptance .def files against our FIX session layer.",
    )
    parser.add_argument(
        "targets", nargs="*", type=Path,
        help="files or directories (default: server/fix44 and server/fix42 of the suite)",
    )
    parser.add_argument("--mode", choices=(*MODES, "both"), default="map")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int,
        help="an acceptor already running (runs one .def at a time); default: our own per .def",
    )
    parser.add_argument("--verbose", action="store_true", help="log the session layer's lines")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    targets = args.targets or [SUITE_DIR / "server" / "fix44", SUITE_DIR / "server" / "fix42"]
    missing = [t for t in targets if not t.exists()]
    if missing:
        print(f"error: {missing[0]} does not exist", file=sys.stderr)
        return 2
    paths = def_files(targets)
    modes = MODES if args.mode == "both" else (args.mode,)
    started = time.monotonic()
    if args.port:
        formats = load_formats(paths[0].parents[2]) if paths else None

        async def serial() -> list[DefResult]:
            return [await run_def(p, args.host, args.port, m, formats)
                    for m in modes for p in paths]

        results = asyncio.run(serial())
    else:
        results = asyncio.run(run_suite(paths, modes))
    for r in results:
        if args.verbose or not r.passed:
            status = "pass" if r.passed else "FAIL"
            print(f"{status} {r.mode:6} {r.seconds:5.1f}s {r.name}")
    print(summarize(results))
    print(f"({time.monotonic() - started:.1f} s)")
    return 0 if all(r.passed for r in results if r.mode == "map") else 1


if __name__ == "__main__":
    sys.exit(main())
