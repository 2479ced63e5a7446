"""The demo: a synthetic credit data set (``datasets``) and a seeded store to try (``seed``)."""
