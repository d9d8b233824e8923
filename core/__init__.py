"""Unlearn Studio engine. Never imports Qt."""

import logging

# bitsandbytes (imported by PEFT whenever it is installed) looks for an optional kernel package when
# its CPU backend loads and, when that is missing, advises installing it; that package downloads code
# from the Hub at run time, which this app never does, and the pure-torch path bitsandbytes falls back
# to is correct. Set here, before anything can import PEFT, so the advice stays out of every log.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
