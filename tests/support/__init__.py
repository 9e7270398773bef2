"""Helpers shared by the test packages: loopback stand-ins for the services Redline calls."""
