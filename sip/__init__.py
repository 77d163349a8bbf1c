"""sans-IO SIP: messages, URIs, SDP, transactions, dialogs, digest auth, registrar;
thin asyncio transports."""
