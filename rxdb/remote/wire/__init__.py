"""The wire: how rxdb processes talk (frames, messages, values, errors, the framed stream)."""
