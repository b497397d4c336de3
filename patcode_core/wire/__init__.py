"""Wire formats many providers share: chat completions, server-sent events, transport errors, bounded bodies."""
