"""Channel adapters: one module per channel, all feeding the same router."""
