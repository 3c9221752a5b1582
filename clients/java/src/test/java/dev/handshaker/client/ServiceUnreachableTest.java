package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Without a service there is no handshake: the caller learns why, and the socket is closed. */
class ServiceUnreachableTest {
  @ParameterizedTest(name = "multiplex {0}")
  @ValueSource(booleans = {false, true})
  void anUnreachableServiceIsUnavailableAndClosesTheSocket(boolean multiplex) throws Exception {
    int deadPort;
    try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      deadPort = probe.getLocalPort();
    }
    try (ServerSocket peer = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      ClientConfig config =
          ClientConfig.builder()
              .serviceAddress("127.0.0.1:" + deadPort)
              .handshakeTimeout(Duration.ofSeconds(5))
              .multiplex(multiplex)
              .build();
      HandshakerSocket socket = new HandshakerSocket(config);
      HandshakerServiceException failure =
          assertThrows(
              HandshakerServiceException.class,
              () -> socket.connect(peer.getLocalSocketAddress(), 5_000));
      assertEquals(Status.Code.UNAVAILABLE, failure.status().getCode());
      assertTrue(socket.isClosed());
      try (Socket accepted = peer.accept()) {
        accepted.setSoTimeout(5_000);
        // The peer sees the connection end without a byte of TLS.
        assertEquals(-1, accepted.getInputStream().read());
      }
    }
  }
}
