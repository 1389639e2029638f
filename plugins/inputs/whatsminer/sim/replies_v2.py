"""What a simulated Whatsminer answers on TCP 4028 (API v1/v2), byte for byte.

Reads: cgminer-style reports (``summary``, ``pools``, ``edevs``/``devs``, ``devdetails``,
``version``; ``+``-joined too) and the flat ``get_*``/``status`` commands. Writes arrive as
``{"enc": 1, "data": ...}``: decrypted with the key of the admin password, the ``token`` checked
against the live tokens of the client's address (30 minutes, 32 per address), the command run,
and the answer sent back as ``{"enc": "..."}``. Replies carry no trailing NUL (unlike cgminer on
Antminers) and the miner closes the connection after each.

Refusals of encrypted writes ("can't access write cmd", "check token err", "json cmd err") go
back in clear, as most firmwares do, or encrypted on a firmware with the ``encrypted_errors``
quirk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webbo.plugins.common.numbers import as_int
from webbo.plugins.inputs.whatsminer.crypto import CryptoError, v2_decrypt, v2_encrypt
from webbo.plugins.inputs.whatsminer.sim.state import Pool, SimDevice

__all__ = ["Outcome", "handle"]

OVERFLOW = 8192
"""btminer's reply buffer: a longer answer (hundreds of error codes) is cut here."""


@dataclass
class Outcome:
    reply: bytes | None
    """None: hang up without a word."""
    after: Callable[[], None] | None = None
    """Applied once the reply is out (power off, restart)."""
    reboot: bool = False


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def flat(device: SimDevice, msg: Any, code: int = 131, status: str = "S") -> dict[str, Any]:
    return {"STATUS": status, "When": int(device.clock.now()), "Code": code, "Msg": msg,
            "Description": ""}


def error(device: SimDevice, code: int, msg: str) -> dict[str, Any]:
    return flat(device, msg, code, "E")


def report(device: SimDevice, code: int, msg: str, name: str, entries: list[Any]
           ) -> dict[str, Any]:
    """A cgminer-style reply: STATUS list, the section, ``id``."""
    return {"STATUS": [{"STATUS": "S", "When": int(device.clock.now()), "Code": code,
                        "Msg": msg, "Description": "cgminer 4.9.2"}], name: entries, "id": 1}


# -- reads ------------------------------------------------------------------------------------


def summary(d: SimDevice) -> dict[str, Any]:
    p = d.profile
    mhs = d.hashrate_mhs()
    temps = d.board_temps()
    chips = [d.chip_temps(b) for b in range(p.boards)]
    fan_in, fan_out = d.fan_speeds()
    power = d.power()
    fields: dict[str, Any] = {
        "Elapsed": d.elapsed(), "MHS av": round(mhs * 0.998, 2), "MHS 5s": d.hashrate_mhs(0.03),
        "MHS 1m": mhs, "MHS 5m": d.hashrate_mhs(0.005), "MHS 15m": d.hashrate_mhs(0.003),
        "HS RT": mhs, "Accepted": d.accepted, "Rejected": d.rejected,
        "Total MH": round(mhs * d.elapsed(), 1), "Temperature": max(temps),
        "freq_avg": p.freq_mhz if d.mining else 0, "Fan Speed In": fan_in,
        "Fan Speed Out": fan_out, "Power": power,
        "Power Rate": round(power / (mhs / 1e6), 2) if mhs else 0.0,
        "Pool Rejected%": 0.0, "Pool Stale%": 0.0, "Uptime": d.uptime(),
        "Hash Stable": d.mining, "Hash Stable Cost Seconds": 1120, "Hash Deviation%": 0.0312,
        "Target Freq": p.freq_mhz, "Target MHS": round(p.factory_ghs * 1000 * 0.99, 0),
        "Env Temp": d.env_temp, "Power Mode": d.power_mode, "Factory GHS": int(p.factory_ghs),
        "Power Limit": d.power_limit, "Chip Temp Min": min(c[0] for c in chips),
        "Chip Temp Max": max(c[2] for c in chips),
        "Chip Temp Avg": round(sum(c[1] for c in chips) / len(chips), 2),
        "Debug": "-0.0_100.0_349", "Btminer Fast Boot": "enable" if d.fast_boot else "disable",
        "Upfreq Complete": 1, "Power Fanspeed": d.psu_fan(), "MAC": d.mac,
        "Firmware Version": f"'{p.fw_ver}'", "Power Current": round(power / 12.6, 1),
        "Power_RT": power, "Security Mode": 0, "Liquid Cooling": not p.fans,
        "Voltage": 1260,
    }
    if "v1" in d.quirks:
        fields["Error Code Count"] = len(d.errors)
        for i, code in enumerate(d.errors):
            fields[f"Error Code {i}"] = int(code)
    if "no_mhs_1m" in d.quirks:  # a build that reports 5 s, 5 min, 15 min, RT and average
        del fields["MHS 1m"]
    if "no_psu_fan" in d.quirks:  # a build whose summary leaves the PSU fan to get_psu
        del fields["Power Fanspeed"]
    if "strings" in d.quirks:  # numbers sent as strings
        fields = {k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                  for k, v in fields.items()}
    return report(d, 11, "Summary", "SUMMARY", [fields])


def devs(d: SimDevice) -> dict[str, Any]:
    p = d.profile
    per_board = d.hashrate_mhs() / p.boards
    temps = d.board_temps()
    entries = []
    for b in range(p.boards):
        low, avg, high = d.chip_temps(b)
        entries.append({
            "ASC": b, "Slot": b, "Name": "SM", "ID": b, "Enabled": "Y",
            "Status": "Alive" if d.mining else "Initialising", "Temperature": temps[b],
            "Chip Frequency": p.freq_mhz if d.mining else 0, "MHS av": round(per_board, 2),
            "MHS 5s": round(per_board * 1.004, 2), "MHS 1m": round(per_board, 2),
            "MHS 5m": round(per_board * 0.999, 2), "MHS 15m": round(per_board * 0.998, 2),
            "HS RT": round(per_board, 2), "Factory GHS": int(p.factory_ghs / p.boards),
            "Upfreq Complete": 1, "Effective Chips": p.chips if d.mining else 0,
            "PCB SN": f"{d.serial[:10]}{b:02d}{d.mac[-2:]}", "Chip Data": p.chip,
            "Chip Temp Min": low, "Chip Temp Max": high, "Chip Temp Avg": avg,
            "chip_vol_diff": 6,
        })
        if "no_mhs_1m" in d.quirks:
            del entries[-1]["MHS 1m"]
    return report(d, 9, f"{p.boards} ASC(s)", "DEVS", entries)


def pools(d: SimDevice) -> dict[str, Any]:
    entries = []
    for n, pool, active in d.listed_pools():
        entries.append({
            "POOL": n, "URL": pool.url, "Status": "Alive", "Priority": n - 1, "Quota": 1,
            "Getworks": 3312 if active else 0, "Accepted": d.accepted if active else 0,
            "Rejected": d.rejected if active else 0, "Works": 0, "Discarded": 0, "Stale": 0,
            "Get Failures": 0, "Remote Failures": 0, "User": pool.user,
            "Last Share Time": int(d.clock.now()) - 3 if active else 0, "Stratum Active": active,
            "Stratum Difficulty": 65536.0 if active else 0.0, "Pool Rejected%": 0.0,
            "Pool Stale%": 0.0, "Bad Work": 0, "Current Block Height": 845123,
            "Current Block Version": 536870916,
        })
    return report(d, 7, f"{len(entries)} Pool(s)", "POOLS", entries)


def devdetails(d: SimDevice) -> dict[str, Any]:
    entries = [{"DEVDETAILS": b, "Name": "SM", "ID": b, "Driver": "bitmicro", "Kernel": "",
                "Model": d.profile.model} for b in range(d.profile.boards)]
    return report(d, 69, "Device Details", "DEVDETAILS", entries)


def version(d: SimDevice) -> dict[str, Any]:
    return report(d, 22, "CGMiner versions", "VERSION", [{"CGMiner": "4.9.2", "API": "3.7"}])


def get_version(d: SimDevice) -> dict[str, Any]:
    p = d.profile
    return flat(d, {"api_ver": p.api_ver, "fw_ver": p.fw_ver, "platform": p.platform,
                    "chip": p.chip})


def status(d: SimDevice) -> dict[str, Any]:
    p = d.profile
    if "v1" in d.quirks:
        return flat(d, {"btmineroff": "false" if d.mining else "true",
                        "Firmware Version": f"'{p.fw_ver}'"})
    return flat(d, {"mineroff": "false" if d.mining else "true",
                    "mineroff_reason": "" if d.mining else "api power_off",
                    "mineroff_time": "" if d.mining else d.when(d.btminer_start),
                    "FirmwareVersion": p.fw_ver, "power_mode": d.power_mode.lower(),
                    "power_limit_set": str(d.power_limit), "hash_percent": "0"})


def get_miner_info(d: SimDevice) -> dict[str, Any]:
    gateway = d.ip.rsplit(".", 1)[0] + ".1"
    info = {"ip": d.ip, "proto": "dhcp", "netmask": "255.255.255.0", "gateway": gateway,
            "dns": gateway, "hostname": d.hostname, "mac": d.mac, "ledstat": d.ledstat,
            "minersn": d.serial}
    if "v1" in d.quirks:  # old firmware: no MAC here (it is in the summary)
        info = {k: v for k, v in info.items() if k not in ("mac", "minersn")}
    return flat(d, info)


def get_psu(d: SimDevice) -> dict[str, Any]:
    power = d.power()
    return flat(d, {"name": "P221B", "hw_version": "V01.00", "sw_version": "V01.00.V01.03",
                    "model": "P221B", "enable": "1" if d.mining else "0",
                    "iin": f"{power / 220:.2f}", "vin": "22050", "pin": str(power),
                    "fan_speed": str(d.psu_fan()), "serial_no": f"{d.serial[:8]}PSU",
                    "vendor": "1", "temp0": f"{d.env_temp + 9:.1f}"})


def get_error_code(d: SimDevice) -> dict[str, Any]:
    return flat(d, {"error_code": [{code: when} for code, when in d.errors.items()]})


REPORTS: dict[str, Callable[[SimDevice], dict[str, Any]]] = {
    "summary": summary, "pools": pools, "edevs": devs, "devs": devs, "devdetails": devdetails,
    "version": version,
}
FLAT_READS: dict[str, Callable[[SimDevice], dict[str, Any]]] = {
    "get_version": get_version, "status": status, "get_miner_info": get_miner_info,
    "get_psu": get_psu, "get_error_code": get_error_code,
}


def render_read(d: SimDevice, cmd: str) -> bytes:
    """A read's bytes, with the firmware's quirks."""
    quirks = d.quirks
    if cmd == "status" and "no_status" in quirks:  # a build without the command
        return dumps(error(d, 14, "invalid cmd"))
    if cmd == "get_error_code":
        if "v1" in quirks:
            return dumps(error(d, 14, "invalid cmd"))
        if "error_code_list" in quirks and d.errors:
            # API 2.0.4: a "list" of key: value pairs, which is not JSON
            items = ",".join(f'"{code}":"{when}"' for code, when in d.errors.items())
            body = dumps(get_error_code(d)).replace(
                dumps({"error_code": [{c: w} for c, w in d.errors.items()]}),
                b'{"error_code":[' + items.encode() + b"]}")
        else:
            body = dumps(get_error_code(d))
        return body[:OVERFLOW]
    body = dumps(FLAT_READS[cmd](d))
    if cmd == "get_psu" and "temp0_comma" in quirks:
        body = body.replace(b'","temp0"', b'""temp0"')
    return body


# -- writes -----------------------------------------------------------------------------------

class BadParams(Exception):
    """A write's parameters the firmware cannot parse (code 132)."""


def _percent(req: dict[str, Any], low: int, high: int, key: str = "percent") -> int:
    value = as_int(req.get(key))
    if value is None or not low <= value <= high:
        raise BadParams(key)
    return value


def _text(req: dict[str, Any], key: str) -> str:
    value = req.get(key)
    if not isinstance(value, str) or not value:
        raise BadParams(key)
    return value


def w_update_pools(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
    keys = [f"{k}{n}" for n in (1, 2, 3) for k in ("pool", "worker", "passwd")]
    if not all(k in req for k in keys):
        raise BadParams("pools")
    values = {k: "" if req[k] is None else str(req[k]) for k in keys}
    d.set_pools([Pool(values[f"pool{n}"], values[f"worker{n}"], values[f"passwd{n}"])
                 for n in (1, 2, 3)])
    return None


def w_set_led(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
    if req.get("param") == "auto":
        d.led = "auto"
        return None
    color = req.get("color")
    period, duration = as_int(req.get("period")), as_int(req.get("duration"))
    if color not in ("red", "green") or not period or duration is None or duration > period:
        raise BadParams("led")
    d.led = {"color": color, "period": period, "duration": duration,
             "start": as_int(req.get("start")) or 0}
    return None


def w_power_off(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
    def stop() -> None:
        d.mining = False
    if str(req.get("respbefore", "true")).lower() == "false":
        return Outcome(None, stop)  # stops at once; the connection just drops
    return Outcome(dumps(flat(d, "API command OK")), stop)


def w_power_on(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
    if not d.mining:
        d.mining = True
        d.btminer_start = d.clock.now()
    return None


def _mode(name: str) -> Callable[[SimDevice, dict[str, Any]], Outcome | None]:
    def write(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
        if d.power_mode != name:
            d.power_mode = name
            d.btminer_start = d.clock.now()  # btminer restarts in the new mode
        return None
    return write


def w_set(attr: str, convert: Callable[[dict[str, Any]], Any]
          ) -> Callable[[SimDevice, dict[str, Any]], Outcome | None]:
    def write(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
        setattr(d, attr, convert(req))
        return None
    return write


def w_power_limit(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
    value = _percent(req, 0, 99999, "power_limit")
    d.power_limit = d.profile.power_limit_w if value == 99999 else value
    return Outcome(dumps(flat(d, "API command OK")), d.restart_btminer)


def w_restart(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
    return Outcome(dumps(flat(d, "API command OK")), d.restart_btminer)


def w_reboot(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
    return Outcome(None, reboot=True)  # btminer reboots without a word


def w_update_pwd(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
    new = req.get("new")
    if req.get("old") != d.password or not isinstance(new, str) or not (
            0 < len(new) <= 8 and new.replace("_", "").isalnum()):
        raise BadParams("pwd")
    d.password = new
    return None


def w_noop(d: SimDevice, req: dict[str, Any]) -> Outcome | None:
    return None


WRITES: dict[str, Callable[[SimDevice, dict[str, Any]], Outcome | None]] = {
    "update_pools": w_update_pools,
    "restart_btminer": w_restart,
    "power_off": w_power_off,
    "power_on": w_power_on,
    "set_led": w_set_led,
    "set_low_power": _mode("Low"),
    "set_normal_power": _mode("Normal"),
    "set_high_power": _mode("High"),
    "set_target_freq": w_set("target_freq_pct", lambda r: _percent(r, -100, 100)),
    "set_power_pct": w_set("power_pct", lambda r: _percent(r, 0, 100)),
    "set_power_pct_v2": w_set("power_pct", lambda r: _percent(r, 0, 100)),
    "adjust_power_limit": w_power_limit,
    "enable_btminer_fast_boot": w_set("fast_boot", lambda r: True),
    "disable_btminer_fast_boot": w_set("fast_boot", lambda r: False),
    "enable_web_pools": w_set("web_pools", lambda r: True),
    "disable_web_pools": w_set("web_pools", lambda r: False),
    "set_hostname": w_set("hostname", lambda r: _text(r, "hostname")),
    "set_zone": w_set("timezone", lambda r: (_text(r, "timezone"), _text(r, "zonename"))),
    "set_temp_offset": w_noop,
    "adjust_upfreq_speed": w_noop,
    "set_poweroff_cool": w_noop,
    "set_fan_zero_speed": w_noop,
    "update_pwd": w_update_pwd,
    "reboot": w_reboot,
}


NOT_ON_V1 = frozenset({"set_power_pct", "set_power_pct_v2"})
"""Writes API v1 firmware (``whatsminer v1.4.0``) does not know: it answers "invalid cmd"."""


# -- the request --------------------------------------------------------------------------------


def _encrypted(d: SimDevice, req: dict[str, Any], client: str) -> Outcome:
    def refuse(code: int, msg: str, readable: bool) -> Outcome:
        reply = error(d, code, msg)
        if readable and "encrypted_errors" in d.quirks:
            return Outcome(dumps({"enc": v2_encrypt(d.aeskey, dumps(reply))}))
        return Outcome(dumps(reply))

    if not d.write_enabled:
        return refuse(45, "can't access write cmd", False)
    data = req.get("data")
    if not isinstance(data, str):
        return refuse(23, "json cmd err", False)
    try:
        inner = json.loads(v2_decrypt(d.aeskey, data))
    except CryptoError:
        return refuse(137, "base64 decode error", False)
    except (UnicodeDecodeError, ValueError):
        return refuse(23, "json cmd err", False)  # another key: the text is noise
    if not isinstance(inner, dict):
        return refuse(23, "json cmd err", False)
    if not d.token_valid(client, inner.get("token")):
        return refuse(135, "check token err", True)
    cmd = inner.get("cmd", inner.get("command"))
    write = WRITES.get(cmd) if isinstance(cmd, str) else None
    if write is None or ("v1" in d.quirks and cmd in NOT_ON_V1):
        return refuse(14, "invalid cmd", True)
    try:
        outcome = write(d, inner)
    except BadParams as exc:
        return refuse(132, f"API parse {exc} param error", True)
    d.record(cmd, {k: v for k, v in inner.items() if k not in ("cmd", "command", "token")})
    if outcome is None:
        outcome = Outcome(dumps(flat(d, "API command OK")))
    if outcome.reply is not None:
        outcome.reply = dumps({"enc": v2_encrypt(d.aeskey, outcome.reply)})
    return outcome


def garble(d: SimDevice, body: bytes) -> bytes:
    """The broken JSON of btminer builds (reference §1.4) this miner was given."""
    if "trailing_comma" in d.quirks:
        body = body.replace(b'"id":1}', b'"id":1,}').replace(b'"Description":""}',
                                                             b'"Description":"",}')
    if "newlines" in d.quirks:
        body = body.replace(b',"', b',\n"')
    return body


def _multi(d: SimDevice, cmd: str) -> Outcome:
    parts = [p for p in dict.fromkeys(cmd.split("+")) if p]
    if "no_multi" in d.quirks or not parts or any(p not in REPORTS for p in parts):
        return Outcome(dumps(error(d, 14, "invalid cmd")))
    body: dict[str, Any] = {p: [REPORTS[p](d)] for p in parts}
    body["id"] = 1
    return Outcome(dumps(body))


def handle(d: SimDevice, raw: bytes, client: str) -> Outcome:
    """The answer to one request on 4028."""
    try:
        req = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return Outcome(dumps(error(d, 23, "json cmd err")))
    if not isinstance(req, dict):
        return Outcome(dumps(error(d, 23, "json cmd err")))
    if "enc" in req:
        if d.profile.api == "v3":  # v3 firmware: 4028 only reads
            return Outcome(dumps(error(d, 14, "invalid cmd")))
        return _encrypted(d, req, client)
    cmd = req.get("cmd", req.get("command"))
    if not isinstance(cmd, str):
        return Outcome(dumps(error(d, 14, "invalid cmd")))
    if "+" in cmd:
        return _multi(d, cmd)
    if cmd in REPORTS:
        return Outcome(garble(d, dumps(REPORTS[cmd](d))))
    if cmd in FLAT_READS:
        return Outcome(garble(d, render_read(d, cmd)))
    if cmd == "get_token" and d.profile.api != "v3":
        token = d.issue_token(client)
        if token is None:
            return Outcome(dumps(error(d, 136, "over max connect")))
        return Outcome(dumps(flat(d, token, 134)))
    if cmd in WRITES:
        return Outcome(dumps(error(d, 45, f"Access denied to '{cmd}' command")))
    return Outcome(dumps(error(d, 14, "invalid cmd")))
