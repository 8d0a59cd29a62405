"""JavaScript syscall hooks (QuickJS): the engine and the ``hooks`` API."""
