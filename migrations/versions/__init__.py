"""One module per schema revision, named by date and slug."""
