"""Fault tests: real mosquitto processes stopped, killed and frozen; the daemon killed; disks filled."""
