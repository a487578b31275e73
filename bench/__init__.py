"""Load bench of the live web chat: `make bench` runs bench/chat_load.py."""
