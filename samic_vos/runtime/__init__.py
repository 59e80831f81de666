"""The runtime layer (lowest): configuration, errors, console, atomic writes, runs and resume,
shards, threads, timers, devices. Imports no other layer."""
