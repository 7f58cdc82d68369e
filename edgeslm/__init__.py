"""edgeslm: an edge anomaly-explanation daemon for industrial IoT."""

__version__ = "0.1.0"
