"""Benchmarks for tools/bench: Outpost, nginx proxy_cache and Varnish side by side."""
