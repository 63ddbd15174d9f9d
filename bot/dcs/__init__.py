"""The DCS side: the HTTP client, its authentication, the task and instance models, the shared
task query and the error tree. Imports nothing of Slack, configuration, the pipeline or state."""
