def test_import():
    """Imports."""
    import analytics_client.frames  # noqa
