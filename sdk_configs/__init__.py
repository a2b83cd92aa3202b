"""SDK configuration and code snippets for apps talking to pushgate. Not built yet (issue 6)."""
