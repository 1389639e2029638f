"""The UI says when an output cannot write or drops metrics: a banner on every page, in Russian
and in English; ``webbo status`` prints the same (tests/agent/cli/test_status.py)."""

from __future__ import annotations

import aiohttp
from api_helpers import config_text, stack
from servers import free_port
from ui_helpers import PASSWORD, login

from webbo.agent.core.plugins import default_registry


async def test_a_dropping_output_shows_on_every_page(tmp_path):
    registry = default_registry()
    dead = f"http://127.0.0.1:{free_port()}"
    agent = ('interval = "200ms"\nflush_interval = "200ms"\nmetric_buffer_limit = 5\n'
             'metric_batch_size = 5')
    text = config_text(tmp_path / "state", [], agent=agent) + f"""
[[outputs.influxdb]]
alias = "central"
urls = ["{dead}"]
timeout = "500ms"
"""
    async with stack(tmp_path, registry, text) as s:
        s.web.store.set_password("miner", PASSWORD)
        runner = s.agent.outputs[0]
        await s.wait_for(lambda: runner.buffer.dropped > 0, 30, "drops")
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            await login(session, s.url)
            for path in ("/miners?lang=ru", "/meters"):
                async with session.get(s.url + path) as resp:
                    page = await resp.text()
                assert "Вывод «influxdb:central»: буфер переполнен" in page, path
                assert "Отброшено метрик:" in page and "Буфер в памяти" in page
            async with session.get(s.url + "/map?lang=en") as resp:
                page = await resp.text()
            assert "Output “influxdb:central”: its buffer is full" in page
            assert "Metrics dropped:" in page
        status = s.agent.status()["outputs"][0]
        assert status["dropping"] and status["failing"] and status["buffer"] == "memory"
