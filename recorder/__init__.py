"""Recording files, crash recovery, retention and index."""
