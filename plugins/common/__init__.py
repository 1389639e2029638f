"""Protocol code that more than one plugin speaks, documented as an API (third-party plugins may
import it like the built-in ones do; it is as stable as :mod:`webbo.agent.plugin`).

* :mod:`webbo.plugins.common.numbers`: lenient numbers (``as_float``, ``as_int``, ``to_ths``);
* :mod:`webbo.plugins.common.cooling`: a model's cooling from its name (``cooling_from_name``);
* :mod:`webbo.plugins.common.urls`: URL settings checked with the key path (``check_http_urls``);
* :mod:`webbo.plugins.common.rpc4028`: the cgminer-style RPC on TCP 4028 (client, reply
  helpers, a simulated server).
"""
