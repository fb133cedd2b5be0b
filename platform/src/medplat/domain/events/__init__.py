"""Doctors' registrations for events (shared items of kind "event") and their attendance: PERSONAL."""
