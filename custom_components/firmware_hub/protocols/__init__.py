"""Wire protocols: requests, messages, parsing, typed errors. No Home Assistant imports."""
