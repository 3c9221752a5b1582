package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLHandshakeException;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A multiplexed handshake that ends on this side while the service still holds its connection
 * must abort it: against a service that allows one session per caller, an abandoned connection
 * would otherwise hold the only slot until the service's idle timeout (10 s), and the next
 * handshake would be refused with RESOURCE_EXHAUSTED.
 */
class MultiplexAbortTest {
  // Well within the service's 10 s idle timeout, past which the service would free the slot itself.
  private static final long SLOT_FREED_WITHIN_MS = 5_000;

  private static HandshakerService service;
  private static JsseEchoServer echoServer;

  private MuxRecorder recorder;
  private ManagedChannel channel;
  private final ExecutorService peers = Executors.newCachedThreadPool(JsseEchoServer.daemon("peer"));

  @BeforeAll
  static void startService() throws Exception {
    service = HandshakerService.start("--max-sessions-per-caller", "1");
    echoServer = new JsseEchoServer(Pki.context(service.devCaPem(), service.credentialDir("localhost")));
  }

  @AfterAll
  static void stopService() throws IOException {
    if (echoServer != null) {
      echoServer.close();
    }
    if (service != null) {
      service.close();
    }
  }

  @BeforeEach
  void openChannel() {
    recorder = new MuxRecorder();
    channel = MuxRecorder.channel(service.address(), recorder);
  }

  @AfterEach
  void closeChannel() throws InterruptedException {
    peers.shutdownNow();
    channel.shutdownNow();
    channel.awaitTermination(10, TimeUnit.SECONDS);
  }

  private ClientConfig.Builder client() {
    return ClientConfig.builder().channel(channel).multiplex(true).serverName("localhost").trustBundle("dev-ca");
  }

  /** A peer that reads what the client sends and then does {@code then} with the connection. */
  private ServerSocket peer(SocketAction then) throws IOException {
    ServerSocket listener = new ServerSocket(0, 8, InetAddress.getLoopbackAddress());
    peers.execute(
        () -> {
          try (Socket socket = listener.accept()) {
            socket.getInputStream().read(new byte[64 * 1024]);
            then.run(socket);
          } catch (IOException | InterruptedException e) {
            // The client went away.
          }
        });
    return listener;
  }

  private interface SocketAction {
    void run(Socket socket) throws IOException, InterruptedException;
  }

  /**
   * The slot of the abandoned handshake {@code id} is free well within the service's idle
   * timeout: the next handshake succeeds (retried while the service still refuses it with
   * RESOURCE_EXHAUSTED, as it may until the abort frame has reached it), and the abandoned
   * connection was aborted.
   */
  private void assertSlotFreedByAbort(long id) throws Exception {
    long began = System.nanoTime();
    byte[] message = "the slot is free".getBytes(StandardCharsets.UTF_8);
    while (true) {
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", echoServer.port(), client().build())) {
        socket.getOutputStream().write(message);
        assertArrayEquals(message, socket.getInputStream().readNBytes(message.length));
        break;
      } catch (HandshakerServiceException refused) {
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, refused.status().getCode(), refused.getMessage());
        assertTrue(
            System.nanoTime() - began < SLOT_FREED_WITHIN_MS * 1_000_000L,
            "the abandoned connection " + id + " still holds the only session slot");
        Thread.sleep(50);
      }
    }
    // The abort may still be on its way out when the retried handshake gets the slot
    // (a loaded machine): wait for it as for its answer.
    assertTrue(
        recorder.eventually(SLOT_FREED_WITHIN_MS, r -> r.aborted(id)),
        "connection " + id + ": no abort frame (Multiplex streams ended: "
            + recorder.closedStreams() + ")");
    // The service's answer to the abort: the id alone.
    assertTrue(
        recorder.eventually(SLOT_FREED_WITHIN_MS, r -> r.abortAcknowledged(id)),
        "connection " + id + ": the abort was not answered");
    long next = recorder.lastStart();
    assertTrue(next > id && recorder.ended(next), "the next handshake did not complete");
  }

  @Test
  void aHandshakeWhosePeerGoesQuietIsAbortedAndFreesItsSlot() throws Exception {
    try (ServerSocket silent = peer(socket -> Thread.sleep(30_000))) {
      ClientConfig config = client().handshakeTimeout(Duration.ofSeconds(1)).build();
      long began = System.nanoTime();
      // The client's read of the server's flight times out: the service still holds the session.
      assertThrows(
          SocketTimeoutException.class,
          () -> HandshakerSocket.connect("localhost", silent.getLocalPort(), config));
      assertTrue(System.nanoTime() - began < 5_000_000_000L, "the handshake timeout did not end the read");
      long abandoned = recorder.lastStart();
      assertSlotFreedByAbort(abandoned);
    }
  }

  @Test
  void aHandshakeWhosePeerHangsUpIsAbortedAndFreesItsSlot() throws Exception {
    try (ServerSocket hangsUp = peer(socket -> {})) {
      SSLHandshakeException failure =
          assertThrows(
              SSLHandshakeException.class,
              () -> HandshakerSocket.connect("localhost", hangsUp.getLocalPort(), client().build()));
      assertTrue(failure.getMessage().contains("peer closed"), failure.getMessage());
      long abandoned = recorder.lastStart();
      assertSlotFreedByAbort(abandoned);
    }
  }

  @Test
  void aHandshakeWhoseAnswerCameTooLateIsAbortedAndFreesItsSlot() throws Exception {
    try (ServerSocket silent = peer(socket -> Thread.sleep(30_000))) {
      ClientConfig config = client().handshakeTimeout(Duration.ofSeconds(1)).build();
      HandshakerServiceException failure;
      service.pause();
      try {
        // The start frame goes out but the service answers nothing within the handshake timeout.
        failure =
            assertThrows(
                HandshakerServiceException.class,
                () -> HandshakerSocket.connect("localhost", silent.getLocalPort(), config));
      } finally {
        service.resume();
      }
      assertEquals(Status.Code.DEADLINE_EXCEEDED, failure.status().getCode());
      // Once the service runs again it starts the connection, and then reads the abort.
      long abandoned = recorder.lastStart();
      // The next handshake may map to the client's other Multiplex stream, which the service
      // (one stream per caller here, as one session) refuses while this one is open: let the
      // late answer arrive first, so that the service holds the session the abort must free
      // (had the other stream's opening reached it first, it would refuse this stream instead).
      assertTrue(
          recorder.eventually(SLOT_FREED_WITHIN_MS, r -> r.answered(abandoned)),
          "connection " + abandoned + " was never answered (Multiplex streams ended: "
              + recorder.closedStreams() + ")");
      assertSlotFreedByAbort(abandoned);
    }
  }
}
