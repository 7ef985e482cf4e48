"""A fake authoritative DNS server for tests, plus throw-away TLS certificates.

``FakeDNS`` runs its own asyncio loop in a thread, so sync and async tests can both use it. It
serves UDP and TCP on one port (127.0.0.1 by default); with ``tls_context`` the TCP side speaks
DNS-over-TLS, and with ``doh=True`` as well it speaks DNS-over-HTTPS (POST or GET /dns-query).

    with FakeDNS({"www.example.com.": ["www.example.com. 300 IN A 192.0.2.1"]}) as dns:
        ... f"udp://127.0.0.1:{dns.port}" ...

Fault injection (plain attributes, change them at any time from the test thread):
``mode`` "answer" | "servfail" | "refused" | "drop"; ``type_modes`` the same per query type name
(also "formerr", "notimp"; e.g. {"NULL": "refused"}); ``delay`` and per-name ``delays``;
``truncate`` names answered with TC set over UDP; ``udp_junk`` sends a wrong-ID and a
wrong-question reply before each real UDP reply; ``wrong_question`` puts another name in every
reply's question; ``http_status``, ``doh_chunked``, ``http_close`` for DoH.
Observations: ``queries`` [(transport, qname, qtype)], ``ids`` (query IDs as received),
``replies`` [(transport, qname)] in the order sent, ``connections`` Counter by transport,
``udp_peers`` (source address of each UDP query), ``http_requests`` [(method, target, headers)].
"""
from __future__ import annotations

import asyncio
import base64
import collections
import datetime
import ipaddress
import socket
import ssl
import struct
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from dnslib import QTYPE, RCODE, RR, DNSRecord

SOA = ". 60 IN SOA a.fake-root. hostmaster.fake-root. 1 3600 600 86400 60"


class FakeDNS:
    def __init__(self, records: dict | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 tls_context: ssl.SSLContext | None = None, doh: bool = False,
                 delay: float = 0.0) -> None:
        self.host, self.port = host, port
        self.tls_context, self.doh = tls_context, doh
        self.records: dict[str, list[RR]] = {}
        for name, zone in (records or {}).items():
            self.add(name, *zone)
        self.mode = "answer"
        self.type_modes: dict[str, str] = {}
        self.delay = delay
        self.delays: dict[str, float] = {}
        self.truncate: set[str] = set()
        self.udp_junk = False
        self.wrong_question = False
        self.http_status = 200
        self.doh_chunked = False
        self.http_close = False
        self.queries: list[tuple[str, str, str]] = []
        self.ids: list[int] = []
        self.replies: list[tuple[str, str]] = []
        self.udp_peers: list[tuple] = []
        self.http_requests: list[tuple[str, str, dict]] = []
        self.connections: collections.Counter = collections.Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -------------------------------------------------------------------------------- records
    def add(self, name: str, *zone: str) -> None:
        """Add RRs (zone-file lines) under ``name``; a name with no RRs exists but is empty."""
        rrs = self.records.setdefault(_norm(name), [])
        for line in zone:
            rrs.extend(RR.fromZone(line))

    @property
    def transport_name(self) -> str:
        return "doh" if self.doh else "tls" if self.tls_context else "tcp"

    def answer(self, data: bytes, transport: str) -> tuple[str, bytes | None]:
        """Record the query in ``data``; return (qname, reply bytes or None to drop it)."""
        try:
            req = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - garbage in, nothing out
            return "", None
        qname = _norm(str(req.q.qname))
        self.queries.append((transport, qname, QTYPE.get(req.q.qtype)))
        self.ids.append(req.header.id)
        mode = self.type_modes.get(QTYPE.get(req.q.qtype), self.mode)
        return qname, None if mode == "drop" else self.build(req, transport)

    def build(self, req: DNSRecord, transport: str) -> bytes:
        """The reply to ``req`` as this server is currently configured to give it."""
        qname, qtype = _norm(str(req.q.qname)), req.q.qtype
        reply = req.reply()
        if self.wrong_question:
            reply.q.qname = "junk.invalid."
        mode = self.type_modes.get(QTYPE.get(qtype), self.mode)
        if mode in ("servfail", "refused", "formerr", "notimp"):
            reply.header.rcode = {"servfail": RCODE.SERVFAIL, "refused": RCODE.REFUSED, "formerr": RCODE.FORMERR,
                                  "notimp": RCODE.NOTIMP}[mode]
        elif transport == "udp" and qname in self.truncate:
            reply.header.tc = 1
        elif qname not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(*RR.fromZone(SOA))
        else:
            for rr in self.records[qname]:
                if rr.rtype in (qtype, QTYPE.CNAME) or qtype == QTYPE.ANY:
                    reply.add_answer(rr)
            if not reply.rr:
                reply.add_auth(*RR.fromZone(SOA))
        return reply.pack()

    async def _reply(self, data: bytes, transport: str) -> bytes | None:
        qname, out = self.answer(data, transport)
        if out is not None:
            delay = self.delays.get(qname, self.delay)
            if delay:
                await asyncio.sleep(delay)
            self.replies.append((transport, qname))
        return out

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> FakeDNS:
        ready, err = threading.Event(), []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            loop.set_exception_handler(lambda _loop, _ctx: None)  # failed TLS handshakes etc.
            try:
                loop.run_until_complete(self._open())
            except BaseException as e:  # noqa: BLE001 - reported to start()
                err.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"FakeDNS-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if err:
            raise err[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeDNS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bind(self) -> tuple[socket.socket, socket.socket]:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(50):
            u = socket.socket(family, socket.SOCK_DGRAM)
            u.bind((self.host, self.port))
            port = u.getsockname()[1]
            t = socket.socket(family, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                t.bind((self.host, port))
            except OSError:
                u.close()
                t.close()
                if self.port:
                    raise
                continue
            t.listen(128)
            self.port = port
            return u, t
        raise OSError("no port free for both UDP and TCP")

    async def _open(self) -> None:
        u, t = self._bind()
        loop = asyncio.get_running_loop()
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), sock=u)
        handler = self._http if self.doh else self._stream
        self._server = await asyncio.start_server(handler, sock=t, ssl=self.tls_context)

    async def _shutdown(self) -> None:
        self._server.close()
        self._udp.close()
        for w in list(self._writers):
            w.transport.abort()
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---------------------------------------------------------------------------- TCP / DoT
    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        kind = self.transport_name
        self.connections[kind] += 1
        self._writers.add(writer)
        tasks: set[asyncio.Task] = set()

        async def one(data: bytes) -> None:
            out = await self._reply(data, kind)
            if out is not None and not writer.is_closing():
                writer.write(struct.pack("!H", len(out)) + out)

        try:
            while True:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
                task = asyncio.create_task(one(await reader.readexactly(n)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            for task in tasks:
                task.cancel()
            self._writers.discard(writer)
            writer.close()

    # ------------------------------------------------------------------------------------ DoH
    async def _http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections["doh"] += 1
        self._writers.add(writer)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                method, target, _ = head[0].split(" ", 2)
                hdrs = {k.strip().lower(): v.strip()
                        for k, _, v in (line.partition(":") for line in head[1:] if line)}
                body = await reader.readexactly(int(hdrs.get("content-length", "0")))
                self.http_requests.append((method, target, hdrs))
                url = urlsplit(target)
                if method == "GET":
                    b64 = parse_qs(url.query).get("dns", [""])[0]
                    body = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
                if url.path != "/dns-query":
                    status, ctype, out = 404, "text/plain", b"not found"
                else:
                    reply = await self._reply(body, "doh")
                    if reply is None:
                        await asyncio.Event().wait()  # "drop": never answer
                    status, ctype, out = self.http_status, "application/dns-message", reply
                    if status != 200:
                        ctype, out = "text/plain", b"fake error"
                writer.write(_http_response(status, ctype, out, self.doh_chunked, self.http_close))
                await writer.drain()
                if self.http_close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, fake: FakeDNS) -> None:
        self.fake = fake
        self.tasks: set[asyncio.Task] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.fake.udp_peers.append(addr)
        task = asyncio.get_running_loop().create_task(self.handle(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle(self, data: bytes, addr: tuple) -> None:
        out = await self.fake._reply(data, "udp")
        if out is None:
            return
        if self.fake.udp_junk:
            wrong_id = struct.pack("!H", (out[0] << 8 | out[1]) ^ 0x5A5A) + out[2:]
            other = DNSRecord.parse(data)
            other.q.qname = "junk.invalid."
            wrong_q = other.reply().pack()
            self.transport.sendto(wrong_id, addr)
            self.transport.sendto(wrong_q, addr)
            await asyncio.sleep(0.02)
        self.transport.sendto(out, addr)


def _http_response(status: int, ctype: str, body: bytes, chunked: bool, close: bool) -> bytes:
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error"}.get(status, "Status")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
    if close:
        head += "Connection: close\r\n"
    if not chunked:
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    half = len(body) // 2
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]) if p)
    head += "Transfer-Encoding: chunked\r\n\r\n"
    return head.encode() + chunks + b"0\r\nX-Trailer: 1\r\n\r\n"


def _norm(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


# ---------------------------------------------------------------------------- test certificates

def make_test_certs(directory: str | Path, names: tuple[str, ...] = ("dns.test",),
                    ips: tuple[str, ...] = ("127.0.0.1",)) -> tuple[str, str, str]:
    """Write a throw-away CA and a server certificate for ``names`` and ``ips`` (SANs) into
    ``directory``; return the paths (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = Path(directory)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hearth test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or ips)[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = d / "ca.pem", d / "server.pem", d / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)  # type: ignore[return-value]


def server_tls_context(cert_file: str, key_file: str,
                       alpn: list[str] | None = None) -> ssl.SSLContext:
    """Server-side TLS context for FakeDNS (DoT, or DoH with ``alpn=["http/1.1"]``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.num_tickets = 0  # TLS 1.3 tickets sent after the handshake add ~40 ms (delayed ACK)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx
