"""Replies by email: answering the unread-chat digest posts the answer into the pair's chat."""
