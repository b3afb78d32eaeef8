pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.media",
    "tests.fixtures.gcs",
    "tests.fixtures.postgres",
]
