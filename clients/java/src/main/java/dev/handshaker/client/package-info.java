/**
 * The Java client of handshaker: TLS 1.3 sockets whose handshakes run in the handshaker service.
 *
 * <p>{@link dev.handshaker.client.HandshakerSocket#connect} opens a client connection; {@link
 * dev.handshaker.client.HandshakerServerSocket} accepts server connections; {@link
 * dev.handshaker.client.HandshakerSocketFactory} plugs the client into libraries that take a
 * {@link javax.net.SocketFactory}. The service (at $HANDSHAKER_ADDR, default 127.0.0.1:50051) runs
 * each handshake over one Handshake stream (or, with the configs' {@code multiplex} setting, over
 * two Multiplex streams that the handshakes of all sockets on one service channel share) and
 * returns the traffic keys; this package seals and opens the records with javax.crypto
 * (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305), answers KeyUpdate, drops NewSessionTicket and
 * closes with close_notify. Private keys stay in the service's keystore.
 */
package dev.handshaker.client;
