"""The Parley relay: one process, one thread, one selector, one SQLite file.

Every piece of state has one owner module; the loop composes them, nothing imports the loop:

- ``loop``: :class:`loop.Relay`, the connections and the iteration (read, dispatch, commit,
  release, write, reap); the one teardown path.
- ``acceptor``: listener, admission at the door, TLS handshake, greeting.
- ``readiness``: selector interest, connections served without waiting, read suspension.
- ``timers``: per-connection deadlines. ``maintenance``: sweeps, housekeeping, admin kicks,
  the input budget's evictions.
- ``connection``: one socket's buffers and TLS reads/writes, and its session fields.
- ``context``: the narrow :class:`context.Context` handlers see; ``handlers/``: one module
  per request area.
- ``sessions``: who is online and their buddies. ``presence``: who hears about a change.
- ``inboxes``: seq caches, the pass's rows, deliveries to apply. ``delivery``: pushes, the
  backlog pump, v1 write accounting, receipts. ``forwarding``: Message tails, Ack frames.
- ``dedup``: the Bloom filter, its buckets, the lookup. ``outage``: answering for lost
  writes when the store cannot write.
- ``store/``: SQLite, one module per aggregate and ``schema`` for migrations.
- ``admission``, ``intake``, ``memory``, ``auth``, ``ratelimit``, ``transfers``, ``config``,
  ``cli``: limits, hashing, configuration and the command line.
- ``status``, ``backup``, ``instance_lock``: the admin's side — live figures and the summary
  line, online backup and restore, one relay per data dir.
"""
