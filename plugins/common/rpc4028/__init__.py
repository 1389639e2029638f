"""The cgminer-style RPC on TCP 4028: cgminer, bmminer (Antminer), btminer (Whatsminer), Avalon,
and most aftermarket firmwares speak it.

The API, by module:

* :mod:`.client` — talking to a device. ``call(net, ip, command, parameter)`` one command,
  checked; ``multicall(net, ip, ["summary", "pools", ...])`` several report commands on one
  connection (``a+b+c``) with the fallback to one per connection for firmwares that refuse it;
  ``probe_call(probe, command)`` the same during identification, memoised on the shared
  :class:`~webbo.agent.plugin.Probe` so every driver that asks ``version`` shares one answer;
  ``raw_call(net, ip, command, params, write=..., writes_allowed=...)`` an operator's raw
  command (reads by :data:`READ_COMMANDS`; anything else only as an allowed write);
  ``decode`` (strict first, repairing the broken JSON firmwares send only when that fails),
  ``encode_request``, ``nul_terminated`` (the reply framing), ``RpcError`` (a ``STATUS`` of
  ``E``/``F`` with its code) and ``GarbledReply``.
* :mod:`.parse` — replies to the normalised reading: ``section(reply, "SUMMARY")`` and
  ``first(...)`` find a section whatever its shape; ``parse_summary``, ``parse_devs``,
  ``parse_bmminer_stats``, ``parse_pools`` read each command; ``reading_from(parts)`` builds a
  :class:`~webbo.agent.plugin.Reading` from the replies of ``multicall``. None of them raises.
* :mod:`.sim_server` — the server side for simulators: ``RpcDevice`` (answers commands, with
  the firmware quirks and faults a simulated device may show), ``listen_rpc``, and the helpers
  every simulated family shares (``check_loopback``, ``sim_mac``, ``assign_faults``).

Numbers: :mod:`webbo.plugins.common.numbers`.
"""
