"""Routing and resilience: one call along its route (retries, rate limits, circuits, deadline, fallback), streams, learned time limits, hedging."""
