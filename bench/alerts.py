"""Alerts benchmark. Prints figures; asserts nothing. Network: 127.0.0.0/8 only.

    .venv/bin/python bench/alerts.py [--miners 10000] [--cycles 3] [--latency-samples 40]

1. **Evaluation CPU per poll cycle.** A farm of N simulated miners runs in its own process
   (``webbo simulate``, web on port 80: run as root); the agent sweeps it with the alert engine
   loaded with the sample webbo.toml's default rules plus 20 more (scoped to racks, other
   thresholds). After the identifying sweep, each poll cycle is measured: the sweep's CPU and
   the evaluation's CPU (which runs right after the sweep). Goal: evaluation ≤ 5% of the
   poll's own CPU.
2. **Offline-to-delivered latency.** 60 simulated Antminers in this process, interval 2 s, a
   ``miner_offline`` rule (threshold 0, for 0) and a real JSON-webhook receiver on loopback:
   miners are powered off one by one at random moments; for each, the time until the alert
   fired (detection) and until the webhook received its message (delivery, ``group_wait``
   included). Goal: detection within one poll interval (+ the rule's duration), delivery p95
   under 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from webbo.agent.alerts.engine import AlertEngine
from webbo.agent.cli.simulate import raise_file_limit, spawn, stop
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import parse_config
from webbo.agent.core.contract import SimOptions
from webbo.agent.core.log import configure_logging
from webbo.agent.core.plugins import default_registry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

RACKS = 10


def sample_alerts() -> str:
    """The sample config's [alerts] section (its default rules), as text."""
    text = (ROOT / "webbo.toml").read_text(encoding="utf-8")
    start = text.index("\n[alerts]")
    end = text.index("\n###", start)
    return text[start:end]


def more_rules() -> str:
    rules = []
    for rack in range(RACKS):
        rules.append(f'[[alerts.rules]]\nname = "rack{rack}-chip"\ncondition = "temp_chip_high"'
                     f'\nthreshold = {85 + rack % 3}\nranges = ["rack {rack}"]\n')
    for n, pct in enumerate((50, 60, 70, 90, 95)):
        rules.append(f'[[alerts.rules]]\nname = "hash-{n}"\ncondition = "hashrate_low"\n'
                     f'threshold = {pct}\nfor = "5m"\n')
    for n, rpm in enumerate((500, 1000, 2000)):
        rules.append(f'[[alerts.rules]]\nname = "fan-{n}"\ncondition = "fan_low"\n'
                     f'threshold = {rpm}\n')
    rules.append('[[alerts.rules]]\nname = "board-hot-75"\ncondition = "temp_board_high"\n'
                 'threshold = 75\ngroups = ["bench"]\n')
    rules.append('[[alerts.rules]]\nname = "offline-fast"\ncondition = "miner_offline"\n'
                 'threshold = 20\nseverity = "critical"\n')
    return "\n".join(rules)


def farm_config(ips: list[str], state: str) -> str:
    per = -(-len(ips) // RACKS)
    ranges = "".join(
        f'[[network.ip_range_groups.ip_ranges]]\nname = "rack {i}"\n'
        f'first = "{ips[i * per]}"\nlast = "{ips[min(len(ips), (i + 1) * per) - 1]}"\n'
        for i in range(RACKS) if i * per < len(ips))
    return (f'[agent]\ninterval = "1h"\ntimeout = "20s"\nconnect_timeout = "5s"\n'
            f'concurrency = 1024\ninternal_metrics = false\n'
            f'[web]\nenabled = false\nstate_dir = "{state}"\n'
            f'[[network.ip_range_groups]]\nname = "bench"\n{ranges}'
            f'[[inputs.bitmain_http]]\nweb_port = 80\nsettings_every = 10\n'
            f'[[inputs.cgminer]]\n{sample_alerts()}\n{more_rules()}\n')


async def until(predicate: object, step: float = 0.05) -> None:
    """Wait until ``predicate()`` is true (polling: what it watches has no event to wait on)."""
    while True:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(step)


def _sort_ip(ip: str) -> tuple[int, ...]:
    return tuple(int(x) for x in ip.split("."))


async def evaluation_cost(miners: int, cycles: int) -> None:
    raise_file_limit()
    proc, farm = spawn("--miners", str(miners), "--base", "127.40.0.1", "--http-port", "80",
                       "--seed", "1", "--families", "antminer")
    try:
        ips = sorted((d["ip"] for d in farm["devices"]), key=_sort_ip)
        registry = default_registry()
        with tempfile.TemporaryDirectory() as state:
            config = parse_config(farm_config(ips, state), registry, path=None)
            agent = Agent(registry, config)
            engine = agent.service(AlertEngine)
            assert engine is not None
            print(f"rules: {len(config.sections['alerts'].rules)} "
                  f"({len(config.sections['alerts'].rules) - 20} default + 20)")
            sink: list = []
            await agent.gather_all_once(sink.append)
            await asyncio.sleep(0.1)
            fleet = agent.services["miners"]
            print(f"identified {len(fleet.inventory)} miners")
            gc_time = [0.0, 0.0]

            def on_gc(phase: str, info: dict) -> None:
                if phase == "start":
                    gc_time[1] = time.process_time()
                elif engine_busy[0]:
                    gc_time[0] += time.process_time() - gc_time[1]

            engine_busy = [False]
            evaluate = engine.evaluate

            def timed_evaluate(now: float | None = None) -> None:
                engine_busy[0] = True
                try:
                    evaluate(now)
                finally:
                    engine_busy[0] = False

            engine.evaluate = timed_evaluate  # type: ignore[method-assign]
            gc.callbacks.append(on_gc)
            rows = []
            for _ in range(cycles):
                gc_time[0] = 0.0
                sink.clear()
                gc.collect()
                before = engine.stats.evaluations
                cpu0 = time.process_time()
                await agent.gather_all_once(sink.append)
                await asyncio.sleep(0)  # the evaluation scheduled right after the sweep
                await until(lambda before=before: engine.stats.evaluations != before, 0.01)
                cpu = time.process_time() - cpu0
                evaluation = engine.stats.evaluation_cpu_s
                gc.collect()
                quiet = time.process_time()
                evaluate()
                quiet = time.process_time() - quiet
                if os.environ.get("BENCH_PROFILE"):
                    import cProfile
                    import pstats

                    profile = cProfile.Profile()
                    profile.runcall(evaluate)
                    pstats.Stats(profile).sort_stats("tottime").print_stats(12)
                rows.append((cpu - evaluation, evaluation, engine.stats.evaluation_time_s,
                             gc_time[0], quiet, fleet.last_sweep.polled_ok, engine.counts()))
            gc.callbacks.remove(on_gc)
            await fleet.close()
            await engine.close()
    finally:
        stop(proc)
    print("\neval CPU: the evaluation after the sweep, as it ran (with any garbage collection "
          "that fell into it: 'of it GC');\nquiet: the same evaluation again right after, "
          "without the sweep's garbage")
    print(f"{'poll CPU s':>11} {'eval CPU ms':>12} {'of it GC ms':>12} {'eval wall ms':>13} "
          f"{'eval/poll':>10} {'quiet ms':>9} {'quiet/poll':>11} {'polled ok':>10}  alerts")
    for poll_cpu, eval_cpu, eval_wall, in_gc, quiet, ok, counts in rows:
        print(f"{poll_cpu:11.2f} {eval_cpu * 1000:12.1f} {in_gc * 1000:12.1f} "
              f"{eval_wall * 1000:13.1f} {100 * eval_cpu / poll_cpu:9.2f}% {quiet * 1000:9.1f} "
              f"{100 * quiet / poll_cpu:10.2f}% {ok:10d}  {counts}")


async def latency(samples: int) -> None:
    from alert_receivers import WebhookReceiver

    registry = default_registry()
    ips = [f"127.41.0.{i}" for i in range(1, 61)]
    sim = await registry.simulators["antminer"].start(
        ips, SimOptions(seed=3, http_port=18090, extra={"models": ["Antminer S19j Pro"]}))
    hook = await WebhookReceiver().start()
    interval = 2.0
    text = (f'[agent]\ninterval = "{interval}s"\ntimeout = "2s"\nconnect_timeout = "1s"\n'
            f'internal_metrics = false\nwatch_config = false\n'
            f'[web]\nenabled = false\n'
            f'[[network.ip_range_groups]]\nname = "lab"\n[[network.ip_range_groups.ip_ranges]]\n'
            f'name = "rack"\nfirst = "{ips[0]}"\nlast = "{ips[-1]}"\n'
            f'[[inputs.bitmain_http]]\nweb_port = 18090\n'
            f'[alerts]\ngroup_by = ["rule", "device"]\n'
            f'[[alerts.rules]]\nname = "offline"\ncondition = "miner_offline"\nthreshold = 0\n'
            f'[[alerts.channels]]\nname = "hook"\nurl = "{hook.url}"\n')
    with tempfile.TemporaryDirectory() as state:
        text = text.replace("[web]\nenabled = false\n",
                            f'[web]\nenabled = false\nstate_dir = "{state}"\n')
        path = Path(state) / "webbo.toml"
        path.write_text(text)
        from webbo.agent.core.config import load_config

        agent = Agent(registry, load_config(path, registry))
        engine = agent.service(AlertEngine)
        assert engine is not None
        await agent.start(signals=False, watch=False)
        fleet = agent.services["miners"]
        await until(lambda: sum(d.state == "ok" for d in fleet.inventory.devices()) >= len(ips),
                    0.2)
        detect: dict[str, float] = {}
        deliver: list[float] = []
        rng = random.Random(5)
        by_mac = {d.mac.lower(): d.ip for d in sim.sims}
        while len(deliver) < samples:
            batch = rng.sample(ips, min(10, samples - len(deliver)))
            off_at: dict[str, float] = {}
            seen = len(hook.messages)
            for ip in batch:
                await asyncio.sleep(rng.uniform(0, interval))
                off_at[ip] = time.time()
                await sim.power_off(ip)
            wanted = seen + len(batch)
            await until(lambda wanted=wanted: len(hook.messages) >= wanted)
            for event in reversed(engine.recent(limit=200)):
                ip = by_mac.get(event["key"])
                key = f"{len(deliver)}:{ip}"
                if event["event"] == "firing" and ip in off_at and key not in detect \
                        and event["time"] >= off_at[ip]:
                    detect[key] = event["time"] - off_at[ip]
            for message in hook.messages[seen:]:
                ip = next((i for i in batch if i + " " in message.body + " "), None)
                if ip is not None:
                    deliver.append(message.at - off_at[ip])
            for ip in batch:
                await sim.power_on(ip)
            await until(lambda: not engine.alerts(), 0.1)
        await agent.stop(flush_timeout=1)
    await hook.stop()
    await sim.close()

    detected = list(detect.values())

    def pct(values: list[float], q: float) -> float:
        return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]

    print(f"\noffline → fired (interval {interval:g} s, for 0 s, threshold 0), "
          f"{len(detected)} samples: p50 {pct(detected, 50):.2f} s, p95 {pct(detected, 95):.2f} s, "
          f"max {max(detected):.2f} s")
    print(f"offline → delivered (group_wait {float(engine.section.group_wait):g} s), "
          f"{len(deliver)} samples: p50 {pct(deliver, 50):.2f} s, p95 {pct(deliver, 95):.2f} s, "
          f"max {max(deliver):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--miners", type=int, default=10000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--latency-samples", type=int, default=40)
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    configure_logging("console", "warning")
    print(f"python {platform.python_version()} on {platform.machine()}, "
          f"{platform.system()} {platform.release()}")
    if not args.skip_cost:
        asyncio.run(evaluation_cost(args.miners, args.cycles))
    if not args.skip_latency:
        asyncio.run(latency(args.latency_samples))


if __name__ == "__main__":
    main()
