"""The Kafka adapter: topics, record codec, the log and the profile reads of the distributed runtime."""
