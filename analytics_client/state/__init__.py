"""High-water marks: where they are kept (mark stores: the protocol, memory, a JSON file) and
the policy of one read (where it starts, which mark each commit records, when the store hears
of it). The Prefect block store lives in ``analytics_client.orchestration``.
"""
