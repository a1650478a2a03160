"""Real servers for tests: start one that is missing, find one that is configured."""
