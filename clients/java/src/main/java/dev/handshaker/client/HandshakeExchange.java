package dev.handshaker.client;

import dev.handshaker.v1.HandshakeRequest;
import dev.handshaker.v1.HandshakeResponse;
import java.io.IOException;

/**
 * The service side of one handshake: a Handshake stream of its own ({@link HandshakeStream}) or
 * a connection on a shared Multiplex stream ({@link Multiplexer}). {@link HandshakeRelay} runs
 * the handshake over either; only this exchange differs.
 */
interface HandshakeExchange extends AutoCloseable {
  /**
   * Sends one request and returns the service's answer to it. The first request carries the
   * start options; a failure of the service (a gRPC status, a connection error on the Multiplex
   * stream, the handshake timeout) is a {@link HandshakerServiceException}.
   */
  HandshakeResponse exchange(HandshakeRequest request) throws IOException;

  /**
   * Releases what is left of the handshake in the service, if anything is: after a COMPLETE or
   * FAILED answer nothing is; otherwise the handshake ended on this side and the service is told
   * to drop it. Never waits for the service.
   */
  @Override
  void close();
}
