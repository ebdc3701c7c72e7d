"""Project-wide pytest settings."""


def pytest_collection_modifyitems(config, items):
    # tf.test.TestCase carries a deprecated `test_session` context manager that pytest collects
    # and TF then skips as "Not a test"; drop it so every skip in the summary is a real one.
    items[:] = [item for item in items if item.name != "test_session"]
