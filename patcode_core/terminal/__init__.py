"""The command line and the terminal: ``patcode`` commands, the interactive session, streamed output, plain-text blocks."""
