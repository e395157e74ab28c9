"""Recall of delivered copies: select, plan, execute, verify, restore — through mailbox backends."""
