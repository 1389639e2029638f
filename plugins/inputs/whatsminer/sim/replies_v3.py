"""What a simulated Whatsminer answers on TCP 4433 (API v3).

Replies are ``{"code": ..., "when": ..., "msg": ..., "desc": "<cmd>"}``. Reads need nothing. A
``set.*`` command must carry ``ts`` (within ten minutes of the miner's clock: the vendor's
tolerance is not published), ``account`` ``super`` (user1..3 may not write by default) and the
8-character token of that password and the miner's salt, else code -4; with the API switch off
every write is -4 as well. The pools of ``set.miner.pools`` arrive AES-encrypted with the
token's digest (NUL or PKCS#7 padding both accepted); in clear they are refused with -3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from webbo.plugins.common.numbers import as_int
from webbo.plugins.inputs.whatsminer.crypto import CryptoError, v3_decrypt_param, v3_token
from webbo.plugins.inputs.whatsminer.sim.replies_v2 import Outcome, dumps
from webbo.plugins.inputs.whatsminer.sim.state import Pool, SimDevice

__all__ = ["handle"]

TS_TOLERANCE = 600


class Refused(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def reply(d: SimDevice, cmd: str, msg: Any, code: int = 0) -> dict[str, Any]:
    return {"code": code, "when": int(d.clock.now()), "msg": msg, "desc": cmd}


# -- reads ------------------------------------------------------------------------------------


def sections(d: SimDevice) -> dict[str, Any]:
    p = d.profile
    gateway = d.ip.rsplit(".", 1)[0] + ".1"
    power = d.power()
    miner: dict[str, Any] = {
        "working": "true" if d.mining else "false", "type": p.model,
        "hash-board": p.model.split("_")[0], "detect-hash-rate": str(int(p.factory_ghs)),
        "cointype": "BTC", "pool-strategy": "FAILOVER", "board-num": str(p.boards),
        "miner-sn": d.serial, "power-limit-set": str(d.power_limit),
        "web-pool": 1 if d.web_pools else 0,
        "fast-boot": "enable" if d.fast_boot else "disable", "hash-percent": str(d.power_pct),
    }
    for b in range(p.boards):
        miner[f"chipdata{b}"] = p.chip
        miner[f"pcbsn{b}"] = f"{d.serial[:10]}{b:02d}{d.mac[-2:]}"
    return {
        "network": {"ip": d.ip, "proto": "dhcp", "netmask": "255.255.255.0", "dns": gateway,
                    "mac": d.mac, "gateway": gateway, "hostname": d.hostname},
        "miner": miner,
        "system": {"api": p.api_ver, "platform": p.platform, "fwversion": p.fw_ver,
                   "control-board-version": "CB6V10", "btrom": "1",
                   "apiswitch": "1" if d.write_enabled else "0", "ledstatus": d.ledstat},
        "power": {"type": "P661B", "mode": "1", "hwversion": "HA3000000",
                  "swversion": "1653.1411", "model": "P661B", "iin": round(power / 220, 2),
                  "vin": 220.5, "vout": 1260, "pin": power, "fanspeed": d.psu_fan(),
                  "temp0": round(d.env_temp + 9, 1), "sn": f"{d.serial[:8]}PSU", "vendor": "6"},
        "salt": d.v3_salt,
        "error-code": [{code: when, "reason": f"error {code}"}
                       for code, when in d.errors.items()],
    }


def summary(d: SimDevice) -> dict[str, Any]:
    p = d.profile
    ths = d.hashrate_mhs() / 1e6
    temps = d.board_temps()
    chips = [d.chip_temps(b) for b in range(p.boards)]
    fan_in, fan_out = d.fan_speeds()
    power = d.power()
    summary = {
        "elapsed": d.elapsed(), "bootup-time": d.uptime(),
        "freq-avg": p.freq_mhz if d.mining else 0, "target-freq": d.target_freq_pct,
        "factory-hash": round(p.factory_ghs / 1000, 3), "hash-average": round(ths * 0.998, 3),
        "hash-1min": round(ths, 3), "hash-15min": round(ths * 0.999, 3),
        "hash-realtime": round(d.hashrate_mhs(0.03) / 1e6, 3),
        "power-rate": round(power / ths, 3) if ths else 0.0, "power-5min": float(power),
        "power-realtime": power, "environment-temperature": d.env_temp,
        "board-temperature": temps, "chip-temp-min": min(c[0] for c in chips),
        "chip-temp-avg": round(sum(c[1] for c in chips) / len(chips), 1),
        "chip-temp-max": max(c[2] for c in chips), "power-limit": d.power_limit,
        "up-freq-finish": 1, "fan-speed-in": fan_in, "fan-speed-out": fan_out,
    }
    if "no_mhs_1m" in d.quirks:  # the v3 build that leaves out the 1-minute average
        del summary["hash-1min"]
    return summary


def pools(d: SimDevice) -> list[dict[str, Any]]:
    out = []
    for n, pool, active in d.listed_pools():
        out.append({"id": n, "url": pool.url, "status": "alive", "account": pool.user,
                    "stratum-active": active, "reject-percent": 0.0,
                    "last-share-time": int(d.clock.now()) - 3 if active else 0,
                    "pool-priority": n - 1})
    return out


def edevs(d: SimDevice) -> list[dict[str, Any]]:
    p = d.profile
    per_board = d.hashrate_mhs() / 1e6 / p.boards
    out = []
    for b in range(p.boards):
        low, avg, high = d.chip_temps(b)
        out.append({"id": b, "slot": b, "hash-average": round(per_board, 3),
                    "factory-hash": round(p.factory_ghs / 1000 / p.boards, 3),
                    "freq": p.freq_mhz if d.mining else 0,
                    "effective-chips": p.chips if d.mining else 0, "chip-temp-min": low,
                    "chip-temp-avg": avg, "chip-temp-max": high,
                    "status": "alive" if d.mining else "stopped"})
    return out


def get_device_info(d: SimDevice, param: Any) -> Any:
    parts = sections(d)
    if param is None:
        return parts
    if not isinstance(param, str) or param not in parts:
        raise Refused(-2, f"invalid param: {param}")
    return {param: parts[param]}


DOCUMENTED_STATUS = frozenset({"summary", "pools", "edevs", "summary+pools"})
"""The ``get.miner.status`` params the vendor documents; a firmware with the
``status_documented_only`` quirk refuses any other join (the three-part one)."""


def get_miner_status(d: SimDevice, param: Any) -> Any:
    if not isinstance(param, str) or not param:
        raise Refused(-3, "param item is null")
    if "status_documented_only" in d.quirks and param not in DOCUMENTED_STATUS:
        raise Refused(-2, f"invalid param: {param}")
    makers: dict[str, Callable[[SimDevice], Any]] = {"summary": summary, "pools": pools,
                                                    "edevs": edevs}
    out = {}
    for part in param.split("+"):
        maker = makers.get(part.strip())
        if maker is None:
            raise Refused(-2, f"invalid param: {part}")
        out[part.strip()] = maker(d)
    return out


def get_miner_setting(d: SimDevice, param: Any) -> Any:
    return {"power-limit": d.power_limit, "upfreq-speed": 0,
            "power-mode": d.power_mode.lower(), "fast-boot": "enable" if d.fast_boot else
            "disable", "target-freq": d.target_freq_pct, "fast-mining": "disable",
            "power": d.power(), "power-percent": d.power_pct}


READS: dict[str, Callable[[SimDevice, Any], Any]] = {
    "get.device.info": get_device_info,
    "get.miner.status": get_miner_status,
    "get.miner.setting": get_miner_setting,
}


# -- writes -----------------------------------------------------------------------------------


def _choice(param: Any, allowed: tuple[str, ...]) -> str:
    if param not in allowed:
        raise Refused(-3, "invalid json item")
    return str(param)


def _number(value: Any, low: int, high: int) -> int:
    number = as_int(value)
    if number is None or isinstance(value, bool) or not low <= number <= high:
        raise Refused(-3, "invalid json item")
    return number


def s_led(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    if param == "auto":
        d.led = "auto"
        return None
    if not isinstance(param, list) or not param or not all(
            isinstance(p, dict) and p.get("color") in ("red", "green") for p in param):
        raise Refused(-3, "invalid json item")
    d.led = param
    return None


def s_power_mode(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    mode = _choice(param, ("low", "normal", "high")).capitalize()
    if d.power_mode != mode:
        d.power_mode = mode
        d.btminer_start = d.clock.now()
    return None


def s_service(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    action = _choice(param, ("start", "stop", "restart", "enable", "disable"))
    if action == "stop":
        d.mining = False
    elif action == "start" and not d.mining:
        d.mining = True
        d.btminer_start = d.clock.now()
    elif action == "restart":
        d.mining = True
        d.restart_btminer()
    return None


def s_pools(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    if not isinstance(param, str):
        raise Refused(-3, "invalid json item")  # the pools must come encrypted
    try:
        items = v3_decrypt_param(key, param)
    except CryptoError:
        raise Refused(-3, "invalid json item") from None
    if not isinstance(items, list) or not 0 < len(items) <= 3 or not all(
            isinstance(i, dict) and isinstance(i.get("pool"), str) for i in items):
        raise Refused(-3, "invalid json item")
    new = [Pool(str(i.get("pool") or ""), str(i.get("worker") or ""), str(i.get("passwd") or ""))
           for i in items]
    d.set_pools(new + [Pool("", "", "")] * (3 - len(new)))
    return None


def s_power_limit(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    value = _number(param, 0, 99999)
    d.power_limit = d.profile.power_limit_w if value in (0, 99999) else value
    d.restart_btminer()
    return None


def s_power_percent(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    if not isinstance(param, dict):
        raise Refused(-3, "invalid json item")
    d.power_pct = _number(param.get("percent"), 0, 100)
    return None


def s_target_freq(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    d.target_freq_pct = _number(param, -100, 100)
    return None


def s_fastboot(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    d.fast_boot = _choice(param, ("enable", "disable")) == "enable"
    return None


def s_hostname(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    if not isinstance(param, dict) or not isinstance(param.get("hostname"), str):
        raise Refused(-3, "invalid json item")
    d.hostname = param["hostname"]
    return None


def s_timezone(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    if not isinstance(param, dict) or not all(
            isinstance(param.get(k), str) for k in ("timezone", "zonename")):
        raise Refused(-3, "invalid json item")
    d.timezone = (param["timezone"], param["zonename"])
    return None


def s_reboot(d: SimDevice, param: Any, key: bytes) -> Outcome | None:
    return Outcome(dumps(reply(d, "set.system.reboot", "ok")), reboot=True)


WRITES: dict[str, Callable[[SimDevice, Any, bytes], Outcome | None]] = {
    "set.system.led": s_led,
    "set.miner.power_mode": s_power_mode,
    "set.miner.service": s_service,
    "set.miner.pools": s_pools,
    "set.miner.power_limit": s_power_limit,
    "set.miner.power_percent": s_power_percent,
    "set.miner.target_freq": s_target_freq,
    "set.miner.fastboot": s_fastboot,
    "set.system.hostname": s_hostname,
    "set.system.timezone": s_timezone,
    "set.system.reboot": s_reboot,
}


def _authorise(d: SimDevice, req: dict[str, Any], cmd: str) -> bytes:
    """The token's AES key when ``req`` may write; raises :class:`Refused` (-4) otherwise."""
    ts, token, account = req.get("ts"), req.get("token"), req.get("account")
    if not d.write_enabled:
        raise Refused(-4, "no permission")
    if account != "super" or not isinstance(ts, int) \
            or isinstance(ts, bool) or abs(ts - d.clock.now()) > TS_TOLERANCE:
        raise Refused(-4, "no permission")
    expected, key = v3_token(cmd, d.v3_password, d.v3_salt, ts)
    if token != expected:
        raise Refused(-4, "no permission")
    return key


def handle(d: SimDevice, req: Any) -> Outcome:
    """The answer to one framed request."""
    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
        return Outcome(dumps(reply(d, "", "invalid command", -2)))
    cmd = req["cmd"]
    param = req.get("param")
    try:
        if cmd in READS:
            return Outcome(dumps(reply(d, cmd, READS[cmd](d, param))))
        write = WRITES.get(cmd)
        if write is None:
            raise Refused(-2, "invalid command")
        key = _authorise(d, req, cmd)
        outcome = write(d, param, key)
    except Refused as exc:
        return Outcome(dumps(reply(d, cmd, exc.msg, exc.code)))
    d.record(cmd, param)
    return outcome if outcome is not None else Outcome(dumps(reply(d, cmd, "ok")))
