"""MQTT edge: the paho-mqtt 2.x client wrapper and our topic names."""
