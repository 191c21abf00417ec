"""Delivery channels (webhooks) and the MongoDB store of subscriptions and attempts."""
