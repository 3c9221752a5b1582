package dev.handshaker.client;

import com.google.protobuf.ByteString;
import dev.handshaker.v1.HandshakeRequest;
import dev.handshaker.v1.HandshakeResponse;
import dev.handshaker.v1.HandshakeStep;
import dev.handshaker.v1.SessionKeys;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.Arrays;
import javax.net.ssl.SSLHandshakeException;

/**
 * Runs one handshake: relays the service's out_bytes to the peer and the peer's bytes to the
 * service until the step is COMPLETE or FAILED. The service side is a {@link HandshakeExchange}
 * (a Handshake stream, or a connection on a Multiplex stream); this loop is the same for both.
 * Does not touch application data.
 */
final class HandshakeRelay {
  /** What a completed handshake hands the record layer. */
  record Outcome(SessionKeys keys, byte[] unconsumed) {}

  // Bytes read from the peer per feed: a whole flight usually fits.
  private static final int READ_CHUNK = 32 * 1024;

  private HandshakeRelay() {}

  /**
   * Runs the handshake and closes {@code service}. For the server role {@code first} carries the
   * server options and this reads the ClientHello before starting; the client role starts with
   * its options alone. Throws {@link HandshakeFailedException} after writing the alert record to
   * the peer.
   */
  static Outcome run(HandshakeExchange service, HandshakeRequest first, InputStream in, OutputStream out)
      throws IOException {
    try (service) {
      byte[] fed = new byte[0];
      HandshakeRequest request = first;
      if (first.hasServer()) {
        // The client speaks first: start the server with its ClientHello.
        fed = readSome(in);
        request = first.toBuilder().setInBytes(ByteString.copyFrom(fed)).build();
      }
      while (true) {
        HandshakeResponse response = service.exchange(request);
        HandshakeStep step = response.getStep();
        if (!step.getOutBytes().isEmpty()) {
          step.getOutBytes().writeTo(out);
          out.flush();
        }
        switch (step.getState()) {
          case HANDSHAKE_STATE_NEED_INPUT:
            fed = readSome(in);
            request = HandshakeRequest.newBuilder().setInBytes(ByteString.copyFrom(fed)).build();
            break;
          case HANDSHAKE_STATE_COMPLETE:
            if (!response.hasKeys()) {
              throw new HandshakerServiceException("a COMPLETE step came without keys");
            }
            long consumed = step.getBytesConsumed();
            if (consumed > fed.length) {
              throw new HandshakerServiceException("bytes_consumed exceeds the bytes fed");
            }
            return new Outcome(response.getKeys(), Arrays.copyOfRange(fed, (int) consumed, fed.length));
          case HANDSHAKE_STATE_FAILED:
            throw new HandshakeFailedException(
                step.getFailure().getAlert(),
                step.getFailure().getReason(),
                step.getFailure().getSentByPeer());
          default:
            throw new HandshakerServiceException("a step with state " + step.getState());
        }
      }
    }
  }

  private static byte[] readSome(InputStream in) throws IOException {
    byte[] buffer = new byte[READ_CHUNK];
    int n = in.read(buffer);
    if (n < 0) {
      throw new SSLHandshakeException("the peer closed the connection during the handshake");
    }
    return Arrays.copyOf(buffer, n);
  }
}
