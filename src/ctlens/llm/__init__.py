"""LLM payloads, image token accounting and provider clients."""
