"""Re-running archived configurations with 2012 semantics (built in its own issues; imports only `archive`)."""
