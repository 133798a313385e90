"""The wire types of the Itinera API, shared by the service and the client."""
