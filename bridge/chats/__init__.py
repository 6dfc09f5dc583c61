"""Chats: rooms the bot owns, who is in them, and each user's view of them."""
