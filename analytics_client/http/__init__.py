"""Talking to the API: the client (retries in one place), auth, paginators, rate limits,
redaction of secrets, and what a response means (``response_actions``).

It reads a resource's ``RequestTemplate`` (``template``), never its config: the plan
(``read/plan.py``) resolves one per resource.
"""
