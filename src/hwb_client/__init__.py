"""hwb-client: the school-side provisioning agent for Hwb, the national learning platform for Wales."""

__version__ = "0.1.0"
