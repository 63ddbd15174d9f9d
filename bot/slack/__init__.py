"""The Slack side: Block Kit helpers, alert rendering, outbox delivery and the HTTP/Socket
Mode serving of the Bolt app. Imports ``bot.dcs`` models and
``state``; never the pipeline or handlers."""
