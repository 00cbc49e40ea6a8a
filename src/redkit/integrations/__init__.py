"""Adapters between redkit and other frameworks: SQLAlchemy repositories, and more to come."""
