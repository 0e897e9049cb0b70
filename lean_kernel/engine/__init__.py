"""The engine: REPL protocol models, the REPL process, LeanServer / AutoLeanServer, the session
cache, the config value and the toolchain that resolves it. Knows nothing of Jupyter."""
