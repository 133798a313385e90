"""The Itinera API from Python."""
