"""Subscriptions and notifications: who hears about which clinical events, and how. No I/O here."""
