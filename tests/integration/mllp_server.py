"""A test MLLP receiver, standing in for a hospital interface engine.

It accepts MLLP connections (plain or TLS) on loopback, parses every message with python-hl7
(Debian's python3-hl7, independent of vitalgate's own code), records it, and answers with an
ACK according to its mode. Everything runs on an asyncio loop in a background thread, so tests
use it synchronously:

    server = MllpServer()
    port = server.start()                 # 127.0.0.1, a free port unless one is given
    server.set_mode("ae", n=2, text="Unknown patient")
    ...
    msgs = server.wait_for(3, timeout=10) # bounded wait for received messages
    server.received()                     # every message so far, oldest first
    server.stop()

Modes (set_mode):
    "aa"                      answer AA (the default)
    "ae", n=N, text=T         answer AE with ERR text T to each message control id N times,
                              then AA ("ce" does the same with CE, enhanced mode)
    "ar", control_id=C, text  answer AR to messages with MSH-10 C (every message when C is
                              None), AA to the others ("cr": CR)
    "ca"                      answer CA (enhanced mode commit accept)
    "close", n=N              close the connection after reading a message, without an
                              answer, N times (default: always), then AA
    "close_partial"           send the start of an ACK, then close the connection
    "garbage"                 answer with bytes that are not MLLP
    "wrong_id"                answer AA naming another control id
    "silent"                  never answer
"""

import asyncio
import datetime
import threading

import hl7
import hl7.mllp


class Received:
    """One message as the receiver saw it."""

    def __init__(self, raw, message, error=None):
        self.raw = raw            # the text between the MLLP start and end blocks
        self.message = message    # hl7.Message, or None when python-hl7 could not parse it
        self.error = error        # why it could not be parsed
        self.answer = None        # the acknowledgment code sent back, or None

    @property
    def control_id(self):
        return str(self.message.segment("MSH")(10)) if self.message else None

    @property
    def type(self):
        if not self.message:
            return None
        msh9 = self.message.segment("MSH")(9)
        return f"{msh9(1)(1)}^{msh9(1)(2)}"

    def field(self, accessor):
        """python-hl7 accessor, unescaped: e.g. "PID.F3.R1.C1" or "OBX2.F5"."""
        return self.message[accessor]


class MllpServer:
    def __init__(self, host="127.0.0.1", ssl_context=None, limit=4 * 1024 * 1024):
        self.host = host
        self.ssl_context = ssl_context
        self.limit = limit
        self.port = None
        self.connections = 0
        self._messages = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._mode = {"name": "aa"}
        self._ae_counts = {}
        self._closes = 0
        self._loop = None
        self._thread = None
        self._server = None
        self._writers = set()

    # -- control ---------------------------------------------------------------------------

    def start(self, port=0):
        """Starts listening; returns the port."""
        ready = threading.Event()
        failure = []

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(self._listen(port))
            except Exception as e:  # noqa: BLE001 - reported to the caller below
                failure.append(e)
                ready.set()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="mllp-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise AssertionError("mllp server did not start within 10 s")
        if failure:
            raise failure[0]
        return self.port

    def stop(self):
        if self._loop is None:
            return

        async def shutdown():
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def set_mode(self, name, **params):
        with self._lock:
            self._mode = {"name": name, **params}
            self._ae_counts = {}
            self._closes = 0

    def received(self):
        with self._lock:
            return list(self._messages)

    def wait_for(self, count, timeout=10):
        """Waits until at least `count` messages arrived; returns them all."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(
                    f"mllp server: {len(self._messages)} messages after {timeout} s, "
                    f"expected {count}")
            return list(self._messages)

    def clear(self):
        with self._lock:
            self._messages.clear()

    # -- serving ---------------------------------------------------------------------------

    async def _listen(self, port):
        return await hl7.mllp.start_hl7_server(
            self._client, self.host, port, encoding="utf-8", ssl=self.ssl_context,
            limit=self.limit)

    async def _client(self, reader, writer):
        with self._lock:
            self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    block = await reader.readblock()
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                raw = block.decode("utf-8")
                try:
                    received = Received(raw, hl7.parse(raw))
                except Exception as e:  # noqa: BLE001 - recorded for the test to see
                    received = Received(raw, None, error=repr(e))
                answer = self._answer(received)
                with self._cond:
                    self._messages.append(received)
                    self._cond.notify_all()
                if answer is None:
                    continue
                if answer == b"close":
                    writer.transport.abort()
                    return
                writer.write(answer)
                await writer.drain()
                if received.answer == "close_partial":
                    writer.transport.abort()
                    return
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, received):
        """The bytes to send back, b"close" to drop the connection, or None for silence."""
        with self._lock:
            mode = dict(self._mode)
            name = mode["name"]
            ctrl = received.control_id
            # A mode may apply only to messages whose control id starts with `prefix` (e.g. "A":
            # alarm events, not the NEWS2 observation sent before them); others get AA.
            if not (ctrl or "").startswith(mode.get("prefix", "")):
                name = "aa"
            if name == "silent":
                return None
            if name == "close":
                n = mode.get("n")
                if n is None or self._closes < n:
                    self._closes += 1
                    received.answer = "close"
                    return b"close"
                name = "aa"
            if name == "close_partial":
                received.answer = "close_partial"
                return b"\x0bMSH|^~\\&|ENGINE"
            if name == "garbage":
                received.answer = "garbage"
                return b"HTTP/1.1 400 Bad Request\r\n\r\n"
            code, text = "AA", None
            if name in ("ae", "ce"):
                seen = self._ae_counts.get(ctrl, 0)
                if seen < mode.get("n", 1):
                    self._ae_counts[ctrl] = seen + 1
                    code, text = name.upper(), mode.get("text", "Application error")
            elif name in ("ar", "cr"):
                target = mode.get("control_id")
                if target is None or target == ctrl:
                    code, text = name.upper(), mode.get("text", "Rejected")
            elif name == "ca":
                code = "CA"
            if received.message is None:
                # Not HL7 that python-hl7 can read: refuse it, as an engine would.
                code, text, ctrl = "AR", "unparseable: " + (received.error or "")[:80], "UNKNOWN"
            received.answer = code
        if name == "wrong_id":
            ctrl = "NOT-" + (ctrl or "")
        return self._ack(received, code, ctrl, text)

    @staticmethod
    def _ack(received, code, ctrl, text):
        stamp = datetime.datetime.utcnow().strftime("%Y%m%d%H%M%S")
        if received.message is not None:
            ack = received.message.create_ack(code, message_id=f"ACK{stamp}",
                                              application="ENGINE", facility="HOSP")
            ack_text = str(ack)
            if ctrl != received.control_id:
                ack_text = ack_text.replace(f"MSA|{code}|{received.control_id}",
                                            f"MSA|{code}|{ctrl}")
        else:
            ack_text = (f"MSH|^~\\&|ENGINE|HOSP|||{stamp}||ACK|ACK{stamp}|P|2.6\r"
                        f"MSA|{code}|{ctrl}\r")
        if text:
            escaped = text.replace("\\", "\\E\\").replace("|", "\\F\\").replace(
                "^", "\\S\\").replace("&", "\\T\\").replace("~", "\\R\\")
            ack_text += f"ERR||MSH^1^10|207^Application internal error^HL70357|E||||{escaped}\r"
        return b"\x0b" + ack_text.encode("utf-8") + b"\x1c\x0d"


if __name__ == "__main__":
    # A manual receiver: python3 mllp_server.py [port]; prints every message it gets.
    import sys
    import time

    srv = MllpServer()
    p = srv.start(int(sys.argv[1]) if len(sys.argv) > 1 else 2575)
    print(f"listening on 127.0.0.1:{p}", flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.2)
            msgs = srv.received()
            for m in msgs[seen:]:
                print(m.raw.replace("\r", "\n"), flush=True)
            seen = len(msgs)
    except KeyboardInterrupt:
        srv.stop()
