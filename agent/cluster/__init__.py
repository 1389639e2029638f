"""Sites and the hub over NATS (design §15, issue 16).

One agent per site polls its own miners and meters, writes its own metrics and keeps its own
UI and API; through a :class:`~webbo.agent.cluster.site.SiteLink` it also publishes what it
knows to NATS and answers the hub's control and config requests for its site. The hub is the
same program with ``[hub]`` on: its :class:`~webbo.agent.cluster.hub.Hub` keeps a view of every
site, built only from what the sites publish, and offers the web the same services a single
agent has (a fleet view, a controller, a network view, meters), so the manual's API and UI
serve all sites with a site column and filter.

Subjects, messages and who may publish what: :mod:`webbo.agent.cluster.subjects` and
:mod:`webbo.agent.cluster.wire`; the NATS set-up (accounts, leaf nodes, TLS): docs/deploy.md.
"""
