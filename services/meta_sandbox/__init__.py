"""meta_sandbox."""
