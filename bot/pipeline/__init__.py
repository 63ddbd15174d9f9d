"""The poll pipeline: the watched instances (``watch``), the poll cycle's steps (``fetch`` →
``changes`` with ``detect`` → ``plan`` with ``routing``, chained by ``poll``), mutes, durations and
stuck tasks, the scheduler that runs it and the health it reports. Imports ``bot.dcs``,
``bot.slack`` and ``state``; never ``handlers`` or the command line."""
