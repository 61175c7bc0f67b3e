"""Feature compression: the shared autoencoder, the run-time quantizer and the byte codec."""
