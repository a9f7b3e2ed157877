"""The instructor's round trip through a learning management system: collect, late work, export."""
