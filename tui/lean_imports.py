"""Modules a client process never runs, loaded only if something touches them.

protobuf's ``descriptor_pool`` imports ``google.protobuf.internal.python_message`` (and
through it ``text_format``, the pure-Python encoder, decoder and containers) whatever the
implementation. With the upb backend that the client uses those modules are never run:
upb builds, encodes and decodes the messages in C. They cost every running client about
0.8 MiB of RSS (bench/bench_tui_memory.py, docs/BENCHMARKS.md "Client memory"), so
:func:`defer_unused_protobuf_modules` registers ``python_message`` as a lazy module
(:class:`importlib.util.LazyLoader`, the standard library's recipe): the import statements
succeed as before and the module runs on its first attribute access.

Invariants:
- Nothing changes behaviour: a lazy module is the real module, executed on first use
  (e.g. the pure-Python protobuf implementation, or anything reading its attributes).
- Runs before the first import of ``protocol`` (``tui/__init__.py`` calls it), only once,
  and only if the module is not imported yet; if protobuf moves the module it does nothing.
- The client touches protobuf from its event loop's thread only (LazyLoader in Python 3.11
  is not safe for two threads touching the module at its first use).
"""

from __future__ import annotations

import importlib.util
import sys

DEFERRED = ("google.protobuf.internal.python_message",)


def defer_unused_protobuf_modules() -> None:
    """Register each module of :data:`DEFERRED` as lazy unless it is already imported."""
    for name in DEFERRED:
        if name in sys.modules:
            continue
        try:
            spec = importlib.util.find_spec(name)  # imports the parent packages (small)
        except ImportError:
            continue
        if spec is None or spec.loader is None:
            continue
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)  # runs nothing yet: the first attribute access does
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)
