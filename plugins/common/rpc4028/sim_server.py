"""The machinery every simulated 4028-RPC device shares: the wire behaviour of cgminer's API
server, fault injection, the §1.4 broken-JSON quirks, and one listener per loopback address.

Wire facts (reference §1): the client connects and writes one JSON request (no newline, no
EOF); the server answers once — the JSON, one NUL byte — and closes. ``"a+b+c"`` asks several
report commands at once and each full reply is nested, in a one-element list, under its
command's name. A firmware can refuse that (``Invalid command``); unknown commands answer
``STATUS E`` code 14, unreadable JSON code 23, privileged commands without write access code 45.

Faults (chosen per device by :class:`SimOptions` ``faults`` shares, or set by a test):

* ``silent``  — accepts the connection, never answers (the client times out);
* ``garbage`` — answers random bytes;
* ``slow``    — answers after ``extra["slow_delay"]`` seconds (default 3);
* ``refuse``  — nothing listens (connection refused) on any of its ports;
* ``half``    — writes half of the reply and closes.

Quirks (reference §1.4, as the firmwares emit them): ``no_multi`` (refuses ``+``),
``missing_comma`` (``}{``), ``leading_comma`` (``[,{``), ``trailing_comma`` (``,}``),
``newlines``, ``nonfinite`` (``"inf"`` numbers), ``strings`` (numbers sent as strings).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from webbo.agent.plugin import SimOptions, ip_to_int
from webbo.plugins.common.simpower import PowerModel

__all__ = [
    "FAULTS",
    "QUIRKS",
    "RpcDevice",
    "RpcProtocol",
    "assign_faults",
    "check_loopback",
    "derived_mac",
    "listen_rpc",
    "servers_at",
    "status",
]

FAULTS = ("silent", "garbage", "slow", "refuse", "half")
QUIRKS = ("no_multi", "missing_comma", "leading_comma", "trailing_comma", "newlines",
          "nonfinite", "strings")
PRIVILEGED = frozenset({
    "addpool", "removepool", "switchpool", "enablepool", "disablepool", "poolpriority",
    "poolquota", "restart", "quit", "save", "ascset", "pgaset", "setconfig", "zero",
})

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def check_loopback(addresses: Iterable[str]) -> list[str]:
    """The addresses as strings, after making sure every one is in 127.0.0.0/8."""
    out = []
    for address in addresses:
        ip = ipaddress.IPv4Address(address)
        if not ip.is_loopback:
            raise ValueError(f"simulated devices run on 127.0.0.0/8 only, not on {address}")
        out.append(str(ip))
    return out


def derived_mac(ip: str) -> str:
    """The MAC the agent derives for a device that tells none (locally administered 02:...)."""
    a, b, c, d = (int(x) for x in ip.split("."))
    return f"02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"


def sim_mac(seed: int, ip: str, oui: str) -> str:
    """A stable, realistic-looking MAC for a simulated device: vendor prefix + the address's
    low 24 bits scrambled by the seed. XOR with one mask per seed is a bijection, so two
    addresses of 127.0.0.0/8 never share a MAC (a hash of the address did, 3 times in 10,000)."""
    mask = int.from_bytes(hashlib.blake2b(f"{seed}".encode(), digest_size=3).digest(), "big")
    low = (ip_to_int(ip) & 0xFFFFFF) ^ mask
    tail = ":".join(f"{(low >> shift) & 0xFF:02x}" for shift in (16, 8, 0))
    return f"{oui}:{tail}".upper()


def assign_faults(addresses: Sequence[str], options: SimOptions, family: str) -> dict[str, str]:
    """Which addresses show which fault: each fault's share of this family, chosen by seed."""
    rng = random.Random(f"{options.seed}:{family}:faults")
    pool = list(addresses)
    rng.shuffle(pool)
    chosen: dict[str, str] = {}
    for fault, share in sorted(options.faults.items()):
        if fault not in FAULTS:
            continue  # another family's fault (the options are shared by every family)
        count = round(len(pool) * float(share))
        if share > 0 and count == 0 and len(pool) >= 1 / share / 2:
            count = 1
        for ip in pool[:count]:
            chosen[ip] = fault
        pool = pool[count:]
    for ip, fault in dict(options.extra.get("fault_by_ip", {})).items():
        chosen[str(ip)] = fault
    return chosen


def status(code: int, msg: str, description: str, letter: str = "S") -> list[dict[str, Any]]:
    return [{"STATUS": letter, "When": int(time.time()), "Code": code, "Msg": msg,
             "Description": description}]


class RpcDevice:
    """One simulated device's RPC personality. Subclasses fill :attr:`commands`."""

    description = "cgminer 4.12.1"
    """STATUS Description (``"cgminer 1.0.0"`` on Antminer bmminer)."""

    def __init__(self, ip: str, mac: str, *, fault: str = "", quirks: Iterable[str] = (),
                 write_access: bool = False, slow_delay: float = 3.0) -> None:
        self.ip = ip
        self.mac = mac
        self.fault = fault
        self.quirks = frozenset(quirks)
        self.write_access = write_access
        self.slow_delay = slow_delay
        self.started = time.time()
        self.down_until = 0.0
        self.requests = 0
        self.commands: dict[str, Callable[[str | None], dict[str, Any]]] = {}
        self.steering: dict[str, float] = {}
        """Run-time changes of the device's physics (see :meth:`steer`)."""
        self.steer_version = 0
        self.power_model: PowerModel | None = None
        """The device's draw (:mod:`webbo.plugins.common.simpower`), where its family sets one."""

    # -- life --------------------------------------------------------------------------------

    @property
    def elapsed(self) -> int:
        return max(0, int(time.time() - self.started))

    @property
    def down(self) -> bool:
        return time.monotonic() < self.down_until

    def reboot(self, seconds: float) -> None:
        """Go away for ``seconds`` (connections are dropped), then come back freshly started."""
        self.down_until = time.monotonic() + seconds
        self.started = time.time() + seconds
        self.on_reboot()
        if self.power_model is not None:
            self.power_model.restart(seconds, self.steady_power())

    def steady_power(self) -> float:
        """Where the draw settles in the device's current state (families override)."""
        return self.power_model.target if self.power_model is not None else 0.0

    def on_reboot(self) -> None:
        """Subclasses reset volatile state here."""

    STEERING = ("heat_c", "hash_factor", "dead_fans", "dead_boards")

    def steer(self, **changes: float | None) -> None:
        """Change what the device reports, at run time (tests and demos make faults with it;
        the wire format stays the firmware's):

        * ``heat_c=15``: boards and chips run this many degrees hotter;
        * ``hash_factor=0``: the hashrate is scaled (0: the miner stops hashing);
        * ``dead_fans=1``: this many fans stop (0 rpm);
        * ``dead_boards=1``: this many hash boards die (no chips found, no hashrate).

        ``None`` removes a change; :meth:`recover` removes them all."""
        for name, value in changes.items():
            if name not in self.STEERING:
                raise ValueError(f"unknown steering {name!r}; known: {', '.join(self.STEERING)}")
            if value is None:
                self.steering.pop(name, None)
            else:
                self.steering[name] = float(value)
        self.steer_version += 1

    def recover(self) -> None:
        """Undo every :meth:`steer` change."""
        self.steering.clear()
        self.steer_version += 1

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"ip": self.ip, "mac": self.mac}
        if self.fault:
            info["fault"] = self.fault
        if self.quirks:
            info["quirks"] = sorted(self.quirks)
        return info

    # -- requests ----------------------------------------------------------------------------

    def answer(self, raw: bytes) -> bytes:
        """The complete wire reply (JSON + NUL) to one raw request."""
        self.requests += 1
        try:
            request = _decoder.decode(raw.strip())
        except msgspec.DecodeError:
            return self._wire({"STATUS": status(23, "Invalid JSON", self.description, "E"),
                               "id": 1})
        if not isinstance(request, dict):
            return self._wire({"STATUS": status(23, "Invalid JSON", self.description, "E"),
                               "id": 1})
        command = request.get("command", request.get("cmd"))
        if not isinstance(command, str):
            return self._wire({"STATUS": status(24, "Missing JSON 'command'", self.description,
                                                "E"), "id": 1})
        parameter = request.get("parameter")
        parameter = None if parameter is None else str(parameter)
        if "+" in command:
            return self._wire(self._multi(command))
        return self._wire(self.one(command, parameter))

    def _multi(self, command: str) -> dict[str, Any]:
        names = [c for c in dict.fromkeys(command.split("+")) if c]
        if "no_multi" in self.quirks:
            return {"STATUS": status(14, "Invalid command", self.description, "E"), "id": 1}
        out: dict[str, Any] = {}
        for name in names:
            if name in PRIVILEGED:  # only report commands may be joined
                reply = {"STATUS": status(45, f"Access denied to '{name}' command",
                                          self.description, "E"), "id": 1}
            else:
                reply = self.one(name, None)
            out[name] = [reply]
        out["id"] = 1
        return out

    def one(self, command: str, parameter: str | None) -> dict[str, Any]:
        if command in PRIVILEGED and not self.write_access:
            return {"STATUS": status(45, f"Access denied to '{command}' command",
                                     self.description, "E"), "id": 1}
        handler = self.commands.get(command)
        if handler is None:
            return {"STATUS": status(14, "Invalid command", self.description, "E"), "id": 1}
        try:
            return handler(parameter)
        except SimCommandError as exc:
            return {"STATUS": status(exc.code, str(exc), self.description, "E"), "id": 1}

    def _wire(self, reply: dict[str, Any]) -> bytes:
        body = _encoder.encode(reply)
        if self.quirks:
            body = self.garble(body)
        return body + b"\x00"

    def garble(self, body: bytes) -> bytes:
        """Apply this device's §1.4 quirks (what real firmwares do to their JSON)."""
        q = self.quirks
        if "missing_comma" in q:
            body = body.replace(b"},{", b"}{")
        if "leading_comma" in q:
            body = body.replace(b"[{", b"[,{", 1)
        if "trailing_comma" in q:
            body = body.replace(b'"id":1}', b'"id":1,}')
        if "newlines" in q:  # raw newlines, also inside strings (btminer)
            body = body.replace(b',"', b',\n"').replace(b'"Msg":"', b'"Msg":"\n')
        if "nonfinite" in q:
            body = body.replace(b'"Utility":0.0', b'"Utility":"inf"').replace(
                b'"Work Utility":0.0', b'"Work Utility":nan')
        return body


class SimCommandError(Exception):
    def __init__(self, message: str, code: int = 14) -> None:
        super().__init__(message)
        self.code = code


class RpcProtocol(asyncio.Protocol):
    """cgminer's API server for one connection: read one request, answer once, close."""

    __slots__ = ("buffer", "device", "timer", "transport")

    def __init__(self, device: RpcDevice) -> None:
        self.device = device
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.device.down:
            transport.close()
            return
        # cgminer gives a client a few seconds to send its request.
        self.timer = asyncio.get_running_loop().call_later(10.0, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.buffer += data
        raw = bytes(self.buffer)
        stripped = raw.strip()
        if stripped.startswith(b"{") and not stripped.endswith(b"}") and len(raw) < 65536:
            return  # more of the request is coming
        self._respond(raw)

    def eof_received(self) -> bool:
        if self.buffer:
            self._respond(bytes(self.buffer))
            return True
        if self.transport is not None:  # a port check: connected and left
            self.transport.close()
        return False

    def _respond(self, raw: bytes) -> None:
        self.buffer.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        device, transport = self.device, self.transport
        assert transport is not None
        fault = device.fault
        if fault == "silent":
            return  # keep the connection open, say nothing
        if fault == "garbage":
            rng = random.Random(device.requests)
            device.requests += 1
            transport.write(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))))
            transport.close()
            return
        reply = device.answer(raw)
        if fault == "half":
            transport.write(reply[: max(1, len(reply) // 2)])
            transport.close()
            return
        if fault == "slow":
            asyncio.get_running_loop().call_later(device.slow_delay, self._send, reply)
            return
        self._send(reply)

    def _send(self, reply: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(reply)
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None


async def listen_rpc(devices: Iterable[RpcDevice], port: int = 4028,
                     backlog: int = 64) -> list[asyncio.Server]:
    """One RPC listener per device (none for ``refuse`` devices)."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    for device in devices:
        if device.fault == "refuse":
            continue
        server = await loop.create_server(
            lambda d=device: RpcProtocol(d), device.ip, port, reuse_address=True,
            backlog=backlog,
        )
        servers.append(server)
    return servers


def servers_at(servers: Iterable[Any], ip: str) -> list[Any]:
    """The listening servers bound to ``ip`` (to power one simulated device off)."""
    found = []
    for server in servers:
        sockets = getattr(server, "sockets", None) or ()
        if any(sock.getsockname()[0] == ip for sock in sockets):
            found.append(server)
    return found


async def close_servers(servers: Iterable[Any]) -> None:
    items = list(servers)
    for server in items:
        server.close()
    for server in items:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2.0)


# -- HTTP (device web interfaces) ---------------------------------------------------------------


class HttpDevice(RpcDevice):
    """An RPC device that also serves a web interface."""

    async def http(self, request: Any) -> Any:
        raise NotImplementedError


async def listen_http(devices: Iterable[HttpDevice], port: int) -> list[asyncio.Server]:
    """One web listener per device on ``port``, all served by one aiohttp low-level server that
    finds the device by the address the client connected to."""
    from aiohttp import web

    by_ip = {d.ip: d for d in devices if d.fault != "refuse"}

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        sockname = transport.get_extra_info("sockname") if transport is not None else None
        device = by_ip.get(sockname[0]) if sockname else None
        if device is None or device.down:
            if transport is not None:
                transport.close()
            raise web.HTTPServiceUnavailable()
        fault = device.fault
        if fault == "silent":
            await asyncio.sleep(3600)
        if fault == "slow":
            await asyncio.sleep(device.slow_delay)
        if fault == "garbage":
            rng = random.Random(device.requests)
            device.requests += 1
            return web.Response(body=bytes(rng.getrandbits(8) for _ in range(64)),
                                content_type="text/html")
        response = await device.http(request)
        if fault == "half" and isinstance(response, web.Response) and response.body:
            body = bytes(response.body)  # type: ignore[arg-type]
            response.body = body[: len(body) // 2]
        return response

    server = web.Server(handler, handler_cancellation=True, access_log=None)
    loop = asyncio.get_running_loop()
    servers = []
    for ip in by_ip:
        servers.append(await loop.create_server(server, ip, port, reuse_address=True,
                                                backlog=64))
    return servers
