"""Power control (design §13): feeds measured by their meters, budgets from four sources, and
a controller that keeps each feed inside its budget by curtailing its miners — closing the loop
on what the revenue-grade meter measures.

Modules: :mod:`.config` (``[power]``), :mod:`.budget` (where a budget comes from),
:mod:`.meters` (what the meters say), :mod:`.models` (the model table for miners that report no
power), :mod:`.units` (each miner's draw and freedom), :mod:`.plan` (the rules, pure),
:mod:`.feed` (one feed's cycle), :mod:`.controller` (the service: cycles, steps, the API's
operations), :mod:`.state` (what survives a restart), :mod:`.hooks` (the entry point).
"""
