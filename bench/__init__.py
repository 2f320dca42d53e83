"""Reproducible benchmarks (not tests): generated feeds, a loopback feed server, peers."""
