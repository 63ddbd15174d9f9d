"""Test doubles that run for real on loopback: the DCS simulator, the fake Slack Web API, the
AK/SK verifier. Imported only by tests, ``demo`` and ``simulate``; never by runtime code."""
