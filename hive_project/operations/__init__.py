"""Operator procedures that span the whole hive: backup and restore, health verification."""
