"""The poll pipeline: which instances are watched, change detection, routing, the poll cycle, the
scheduler that runs it and the health it reports. Imports ``bot.dcs``, ``bot.slack`` and ``state``;
never ``handlers`` or the command line."""
