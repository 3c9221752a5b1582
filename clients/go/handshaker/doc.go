// Package handshaker makes TLS 1.3 and TLS 1.2 connections whose handshakes
// run in the handshaker service, the way crypto/tls makes them locally.
//
// The service holds the private keys and runs the handshake; this package
// relays the handshake bytes between the peer and the service (one gRPC
// Handshake stream per connection, or with Config.Multiplex a few Multiplex
// streams shared by all connections), then seals and opens the application
// records itself with the traffic keys the service returns: AES-128-GCM,
// AES-256-GCM or ChaCha20-Poly1305, KeyUpdate in both directions,
// close_notify, and post-handshake NewSessionTickets (dropped: the stream
// API does not resume). TLS 1.2 sessions (Config.MinVersion and MaxVersion
// choose the versions) use the AEAD suites only (AES-GCM per RFC 5288,
// ChaCha20-Poly1305 per RFC 7905), refuse renegotiation with a warning
// no_renegotiation alert, and have no KeyUpdate.
//
//	conn, err := handshaker.Dial(ctx, "tcp", "example.com:443", &handshaker.Config{
//		NextProtos: []string{"http/1.1"},
//	})
//
//	ln, err := handshaker.Listen("tcp", "127.0.0.1:8443", &handshaker.Config{
//		Credential: "localhost", // the keystore credential to serve
//	})
//
// The service is at Config.ServiceAddr, else $HANDSHAKER_ADDR, else
// 127.0.0.1:50051. A handshake that fails returns a *HandshakeError with the
// TLS alert and the reason; when this side raised the alert, the alert record
// was written to the peer first.
package handshaker
