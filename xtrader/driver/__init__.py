"""The capture driver, in parts: each concern of running a capture in a module named for it."""
