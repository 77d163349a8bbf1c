"""Media workers: RTP/WebRTC endpoints driven by cext on a 20 ms clock, controlled over msgpack."""
