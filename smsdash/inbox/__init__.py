"""Two-way conversations: the inbox of replies, each number's thread, and answering from it."""
