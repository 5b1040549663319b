"""The API's routers, one per consumer."""
