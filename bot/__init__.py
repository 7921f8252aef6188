"""Gateway of the 12345 omnichannel assistant: every public HTTP surface lives here."""
