"""The live view's page: index.html, live.js and live.css (package data, served by ../server.py)."""
