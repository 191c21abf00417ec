"""Clients for the internal patient, orders, results and notify services."""
