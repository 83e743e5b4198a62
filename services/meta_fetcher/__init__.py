"""meta_fetcher."""
