"""The alert engine's state machine on a real inventory: hysteresis, unknown readings, flap
suppression, silences, reported alerts, refused edits. Readings are set on the inventory's
devices as a poll would set them; time is passed to ``evaluate`` explicitly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from webbo.agent.alerts.engine import AlertEngine
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import ConfigError, load_config
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import BoardReading, Reading

NETWORK = """
[[network.ip_range_groups]]
name = "Зал 1"
[[network.ip_range_groups.ip_ranges]]
name = "Стойка 5"
first = "127.9.0.1"
last = "127.9.0.200"
"""


def make(tmp_path: Path, registry, alerts: str) -> tuple[Agent, AlertEngine]:
    path = tmp_path / "webbo.toml"
    path.write_text(f'[web]\nstate_dir = "{tmp_path}/state"\n{NETWORK}\n[alerts]\n'
                    f'group_wait = "0s"\n{alerts}\n', encoding="utf-8")
    agent = Agent(registry, load_config(path, registry))
    engine = agent.service(AlertEngine)
    assert engine is not None
    engine.configure(agent.config)
    return agent, engine


def miner(agent: Agent, n: int, **reading: object) -> Device:
    fleet = agent.services["miners"]
    device = Device(mac=f"02:00:00:00:00:{n:02x}", ip=f"127.9.0.{n}", driver="cgminer",
                    make="Antminer", model="S19", group="Зал 1", range="Стойка 5", state="ok",
                    last_seen=time.time())
    fleet.inventory.by_mac[device.mac] = device
    set_reading(device, **reading)
    return device


def set_reading(device: Device, **values: object) -> None:
    device.reading = Reading(time_ns=time.time_ns(), **values)  # type: ignore[arg-type]


def statuses(engine: AlertEngine) -> list[tuple[str, str, str]]:
    return sorted((a.rule, a.key[-2:], a.status) for a in engine.alerts())


def test_hysteresis_fires_above_threshold_and_resolves_below_it_minus_hysteresis(
        tmp_path, registry):
    agent, engine = make(tmp_path, registry, '[[alerts.rules]]\nname = "hot"\n'
                         'condition = "temp_chip_high"\nthreshold = 90\nhysteresis = 5\n')
    d = miner(agent, 1, temp_chip_max_c=88.0)
    engine.evaluate(100.0)
    assert statuses(engine) == []
    set_reading(d, temp_chip_max_c=91.0)
    engine.evaluate(101.0)
    assert statuses(engine) == [("hot", "01", "firing")]
    set_reading(d, temp_chip_max_c=86.0)  # below 90 but above 85: still firing
    engine.evaluate(102.0)
    assert statuses(engine) == [("hot", "01", "firing")]
    d.state = "unreachable"  # no fresh reading: the alert stays as it is
    set_reading(d, temp_chip_max_c=20.0)
    engine.evaluate(103.0)
    assert statuses(engine) == [("hot", "01", "firing")]
    d.state = "ok"
    set_reading(d, temp_chip_max_c=84.0)
    engine.evaluate(104.0)
    assert statuses(engine) == []
    assert [e["event"] for e in engine.recent()] == ["resolved", "firing"]


def test_pending_until_the_duration_then_firing_and_a_blip_resets_it(tmp_path, registry):
    agent, engine = make(tmp_path, registry, '[[alerts.rules]]\nname = "slow"\n'
                         'condition = "hashrate_low"\nfor = "2m"\n')
    d = miner(agent, 2, hashrate_ths=50.0, expected_hashrate_ths=100.0)
    engine.evaluate(1000.0)
    assert statuses(engine) == [("slow", "02", "pending")]
    engine.evaluate(1100.0)
    assert statuses(engine) == [("slow", "02", "pending")]
    set_reading(d, hashrate_ths=99.0, expected_hashrate_ths=100.0)
    engine.evaluate(1110.0)
    assert statuses(engine) == []  # a pending alert just ends, nothing was sent
    set_reading(d, hashrate_ths=10.0, expected_hashrate_ths=100.0)
    engine.evaluate(1200.0)
    engine.evaluate(1319.0)
    assert statuses(engine) == [("slow", "02", "pending")]
    engine.evaluate(1320.0)
    assert statuses(engine) == [("slow", "02", "firing")]
    assert engine.history[-1]["event"] == "firing"


def test_a_flapping_alert_resolves_only_after_a_quiet_flap_window(tmp_path, registry):
    agent, engine = make(tmp_path, registry, 'flap_window = "10m"\nflap_threshold = 3\n'
                         '[[alerts.rules]]\nname = "fan"\ncondition = "fan_low"\n')
    d = miner(agent, 3, fans_rpm=[0, 5000])
    t = 10_000.0
    for _ in range(2):  # fires and resolves twice: not flapping yet
        set_reading(d, fans_rpm=[0, 5000])
        engine.evaluate(t)
        set_reading(d, fans_rpm=[4000, 5000])
        engine.evaluate(t + 10)
        t += 20
    assert statuses(engine) == []
    set_reading(d, fans_rpm=[0, 5000])
    engine.evaluate(t)  # the third firing within the window: flapping
    alert = engine.alerts()[0]
    assert alert.flapping
    set_reading(d, fans_rpm=[4000, 5000])
    engine.evaluate(t + 10)
    engine.evaluate(t + 300)
    assert statuses(engine) == [("fan", "03", "firing")]
    engine.evaluate(t + 10 + 600)
    assert statuses(engine) == []


def test_a_silence_holds_the_message_back_but_the_alert_shows(tmp_path, registry):
    agent, engine = make(tmp_path, registry, '[[alerts.rules]]\nname = "hot"\n'
                         'condition = "temp_chip_high"\n')
    miner(agent, 4, temp_chip_max_c=99.0)
    miner(agent, 5, temp_chip_max_c=99.0)
    silence = engine.silence(until=time.time() + 3600, who="tests", comment="maintenance",
                             macs=["02:00:00:00:00:04"])
    engine.evaluate()
    firing = {a.key[-2:]: a for a in engine.alerts("firing")}
    assert firing["04"].silenced_by == silence.id and not firing["04"].notified
    assert firing["05"].silenced_by == "" and firing["05"].notified
    assert engine.counts() == {"firing": 2, "pending": 0, "silenced": 1}
    engine.unsilence(silence.id)
    engine.evaluate()
    assert firing["04"].notified and not firing["04"].silenced_by
    assert [s.active(time.time()) for s in engine.silences.all()] == [False]


def test_a_silence_needs_a_matcher_and_a_future_end(tmp_path, registry):
    from webbo.agent.alerts.silences import SilenceError

    _, engine = make(tmp_path, registry, "")
    with pytest.raises(SilenceError, match="name what to silence"):
        engine.silence(until=time.time() + 60)
    with pytest.raises(SilenceError, match="past"):
        engine.silence(until=time.time() - 1, rules=["x"])
    with pytest.raises(SilenceError, match=r"macs\[0\]"):
        engine.silence(until=time.time() + 60, macs=["nope"])


def test_reported_alerts_go_through_the_same_machine(tmp_path, registry):
    _, engine = make(tmp_path, registry, '[[alerts.rules]]\nname = "budget"\n'
                     'condition = "feed_over_budget"\nseverity = "critical"\n')
    assert engine.report("meter_stale", "feed-1", True, "stale") == 0  # no rule watches it
    assert engine.report("feed_over_budget", "feed-1", True, "Ввод 1: 812 кВт при лимите 800",
                         {"name": "Ввод 1"}, value=812.0) == 1
    alert = engine.alerts("firing")[0]
    assert (alert.rule, alert.key, alert.kind, alert.severity) == (
        "budget", "feed-1", "reported", "critical")
    engine.evaluate()
    assert len(engine.alerts("firing")) == 1
    assert engine.report("budget", "feed-1", False) == 1
    assert engine.alerts() == []
    assert [e["event"] for e in engine.recent()] == ["resolved", "firing"]


@pytest.mark.parametrize(("rule", "path"), [
    ('condition = "no_such"', "alerts.rules[1].condition"),
    ('condition = "temp_chip_high"\nfor = "soon"', "alerts.rules[1].for"),
    ('condition = "temp_chip_high"\nranges = ["Стойка 99"]', "alerts.rules[1].ranges[0]"),
    ('condition = "temp_chip_high"\nseverity = "meh"', "alerts.rules[1].severity"),
])
async def test_an_invalid_rule_is_refused_with_its_key_path_and_the_rules_stay(
        tmp_path, registry, rule, path):
    import tomlkit

    from webbo.agent.core.config_edit import append_table

    agent, engine = make(tmp_path, registry, '[[alerts.rules]]\nname = "hot"\n'
                         'condition = "temp_chip_high"\n')
    text = (tmp_path / "webbo.toml").read_text()
    table = dict(tomlkit.parse(f'name = "new"\n{rule}\n'))
    with pytest.raises(ConfigError) as caught:
        await agent.edits.apply(lambda doc: append_table(doc, "alerts.rules", table))
    assert str(caught.value).startswith(path + ":"), str(caught.value)
    assert (tmp_path / "webbo.toml").read_text() == text
    assert list(engine.rules) == ["hot"]


def test_a_channel_url_apprise_cannot_parse_is_refused(tmp_path, registry):
    import tomlkit

    from webbo.agent.core.config_edit import append_table

    agent, _ = make(tmp_path, registry, "")
    with pytest.raises(ConfigError, match=r"^alerts\.channels\[0\]\.url: "):
        agent.edits.check(lambda doc: append_table(doc, "alerts.channels", dict(
            tomlkit.parse('name = "tg"\nurl = "telegram-please"\n'))))


def test_boards_that_vanish_or_die_and_a_reboot_are_noticed(tmp_path, registry):
    agent, engine = make(tmp_path, registry,
                         '[[alerts.rules]]\nname = "board"\ncondition = "board_dead"\n'
                         '[[alerts.rules]]\nname = "reboot"\ncondition = "miner_rebooted"\n')
    boards = [BoardReading(index=i, hashrate_ths=30.0, chips=76) for i in range(3)]
    d = miner(agent, 6, boards=boards, hashrate_ths=90.0, uptime_s=5000)
    engine.evaluate(100.0)
    assert statuses(engine) == []
    set_reading(d, boards=boards[:2], hashrate_ths=60.0, uptime_s=40)
    engine.evaluate(101.0)
    assert statuses(engine) == [("board", "06", "firing"), ("reboot", "06", "firing")]
    set_reading(d, boards=boards, hashrate_ths=90.0, uptime_s=50)
    engine.evaluate(102.0)
    assert statuses(engine) == [("reboot", "06", "firing")]
    engine.evaluate(102.0 + 600)
    assert statuses(engine) == []


def test_work_mode_set_through_the_agent_is_compared(tmp_path, registry):
    from webbo.agent.fleet.model import WorkMode

    agent, engine = make(tmp_path, registry, '[[alerts.rules]]\nname = "mode"\n'
                         'condition = "work_mode_mismatch"\n')
    d = miner(agent, 7, work_mode=WorkMode.NORMAL)
    engine.evaluate()
    assert statuses(engine) == []
    d.work_mode_set = "sleep"
    engine.evaluate()
    assert statuses(engine) == [("mode", "07", "firing")]


async def test_a_failing_channel_is_retried_dropped_and_visible_and_blocks_nothing(
        tmp_path, registry):
    from alert_receivers import SmtpReceiver, WebhookReceiver, wait_until

    hook = await WebhookReceiver(fail_with=500).start()
    mail = SmtpReceiver().start()
    try:
        _, engine = make(tmp_path, registry, f"""retry_attempts = 3
retry_max_backoff = "1s"
[[alerts.rules]]
name = "budget"
condition = "feed_over_budget"
[[alerts.channels]]
name = "hook"
url = "{hook.url}"
[[alerts.channels]]
name = "mail"
url = "{mail.url}"
""")
        engine.start()
        engine.report("feed_over_budget", "feed-1", True, "Ввод 1: 812 кВт при лимите 800")
        await wait_until(lambda: len(mail.messages) == 1, 20, "the mail")
        hook_channel = engine.notifier.channels["hook"]
        await wait_until(lambda: hook_channel.stats.dropped == 1, 20, "the hook message dropped")
        status = {c["name"]: c for c in engine.status()["channels"]}
        assert status["hook"]["healthy"] is False and status["hook"]["failed_attempts"] == 3
        assert "failure" in status["hook"]["last_error"]
        assert status["mail"]["healthy"] is True and status["mail"]["sent"] == 1
        assert engine.status()["channels_failing"] == 1
        assert mail.messages[0].title == "[ВНИМАНИЕ] feed-1: Ввод 1: 812 кВт при лимите 800"
        assert await engine.test_channel("mail") == (True, "")
        ok, error = await engine.test_channel("hook")
        assert not ok and error
        assert await engine.test_channel("nope") == (False, "no channel named 'nope'")
    finally:
        await engine.close()
        await hook.stop()
        mail.stop()


def test_the_sample_config_ships_the_default_rules(registry):
    from project import ROOT

    from webbo.agent.alerts.config import AlertsSection
    from webbo.agent.alerts.defaults import DEFAULT_RULES

    config = load_config(ROOT / "webbo.toml", registry)
    section = config.section(AlertsSection)
    assert section.enabled and not section.channels
    shipped = [{"name": r.name, "condition": r.condition} for r in section.rules]
    assert shipped == [{"name": r["name"], "condition": r["condition"]} for r in DEFAULT_RULES]
    for rule, default in zip(section.rules, DEFAULT_RULES, strict=True):
        assert rule.threshold == default.get("threshold")
        assert rule.severity == default.get("severity", "warning")


def test_a_reported_alert_saved_before_a_restart_waits_for_its_reporter(tmp_path, registry):
    rules = '[[alerts.rules]]\nname = "budget"\ncondition = "feed_over_budget"\n'
    _, engine = make(tmp_path, registry, rules)
    engine.report("feed_over_budget", "feed-1", True, "over")
    engine.report("feed_over_budget", "feed-2", True, "over")
    engine.save()
    _, again = make(tmp_path, registry, rules)  # the agent restarted
    now = again.started_at
    again.evaluate(now + 10)
    assert sorted(a.key for a in again.alerts("firing")) == ["feed-1", "feed-2"]
    again.report("feed_over_budget", "feed-1", True, "still over")  # spoke again: stays
    again.evaluate(now + again.report_grace + 1)  # feed-2's reporter never spoke: over
    assert [a.key for a in again.alerts("firing")] == ["feed-1"]
    assert [e["event"] for e in again.recent()][:1] == ["resolved"]


def test_listeners_hear_every_alert_event_and_the_cluster_finds_the_engine(tmp_path, registry):
    from webbo.agent.cluster.site import AlertSource

    agent, engine = make(tmp_path, registry, '[[alerts.rules]]\nname = "budget"\n'
                         'condition = "feed_over_budget"\n')
    assert agent.service(AlertSource) is engine  # the site link's way to find it
    heard: list[dict] = []
    engine.add_alert_listener(heard.append)
    engine.add_alert_listener(lambda event: 1 / 0)  # a broken listener harms nobody
    engine.report("feed_over_budget", "feed-1", True, "over")
    engine.report("feed_over_budget", "feed-1", False)
    assert [(e["event"], e["rule"], e["key"]) for e in heard] == [
        ("firing", "budget", "feed-1"), ("resolved", "budget", "feed-1")]
