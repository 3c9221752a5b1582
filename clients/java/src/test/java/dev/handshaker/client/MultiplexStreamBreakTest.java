package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A Multiplex stream that breaks (the service dies) fails the handshakes on it with the gRPC
 * status, and the next handshake after the service is back opens a new stream. A service of its
 * own, since this test kills it.
 */
class MultiplexStreamBreakTest {
  private static HandshakerService service;
  private static JsseEchoServer echoServer;

  @BeforeAll
  static void startService() throws Exception {
    service = HandshakerService.start();
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

  private static void echoes(HandshakerSocket socket, String message) throws IOException {
    byte[] bytes = message.getBytes(StandardCharsets.UTF_8);
    socket.getOutputStream().write(bytes);
    assertArrayEquals(bytes, socket.getInputStream().readNBytes(bytes.length));
  }

  private static Status.Code codeOf(ExecutionException failure) {
    return assertInstanceOf(HandshakerServiceException.class, failure.getCause()).status().getCode();
  }

  @Test
  void aBrokenStreamFailsItsHandshakesAndTheNextHandshakeOpensANewOne() throws Exception {
    MuxRecorder recorder = new MuxRecorder();
    ManagedChannel channel = MuxRecorder.channel(service.address(), recorder);
    ClientConfig config =
        ClientConfig.builder().channel(channel).multiplex(true).serverName("localhost").trustBundle("dev-ca").build();
    ExecutorService threads = Executors.newCachedThreadPool();
    try (Gate gate = new Gate(echoServer.port())) {
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", echoServer.port(), config)) {
        echoes(socket, "before");
      }
      // Live in the service, held mid-handshake by the gate.
      Future<?> held =
          threads.submit(
              () -> {
                try (HandshakerSocket socket = HandshakerSocket.connect("localhost", gate.port(), config)) {
                  echoes(socket, "held");
                }
                return null;
              });
      assertTrue(gate.await(1, 20), "the held connection did not reach the gate");

      // Frozen, the service leaves a start frame unanswered; killed, it breaks the stream under
      // the handshake waiting for that answer.
      service.pause();
      Future<?> waiting =
          threads.submit(
              () -> {
                HandshakerSocket.connect("localhost", echoServer.port(), config).close();
                return null;
              });
      assertTrue(
          recorder.eventually(10_000, r -> r.starts().size() == 3), "the third start frame was not sent");
      service.kill();
      long killed = System.nanoTime();
      ExecutionException waitingFailure =
          assertThrows(ExecutionException.class, () -> waiting.get(10, TimeUnit.SECONDS));
      assertEquals(Status.Code.UNAVAILABLE, codeOf(waitingFailure));
      // Long before the 30 s handshake timeout: the broken stream woke the handshake.
      assertTrue(System.nanoTime() - killed < 10_000_000_000L);

      // The held connection's next frame would go to a broken stream.
      gate.open();
      ExecutionException heldFailure = assertThrows(ExecutionException.class, () -> held.get(20, TimeUnit.SECONDS));
      assertEquals(Status.Code.UNAVAILABLE, codeOf(heldFailure));

      HandshakerServiceException down =
          assertThrows(
              HandshakerServiceException.class,
              () -> HandshakerSocket.connect("localhost", echoServer.port(), config));
      assertEquals(Status.Code.UNAVAILABLE, down.status().getCode());

      int opened = recorder.streams(MuxRecorder.MULTIPLEX);
      service.restart();
      channel.resetConnectBackoff();
      // Until the channel has reconnected, a handshake reports UNAVAILABLE.
      long deadline = System.nanoTime() + 20_000_000_000L;
      while (true) {
        try (HandshakerSocket socket = HandshakerSocket.connect("localhost", echoServer.port(), config)) {
          echoes(socket, "after");
          break;
        } catch (HandshakerServiceException e) {
          assertEquals(Status.Code.UNAVAILABLE, e.status().getCode(), e.getMessage());
          assertTrue(System.nanoTime() < deadline, "no handshake within 20 s of the restart: " + e.getMessage());
          Thread.sleep(100);
          channel.resetConnectBackoff();
        }
      }
      assertTrue(
          recorder.streams(MuxRecorder.MULTIPLEX) > opened,
          "no new Multiplex stream after the restart: " + opened + " before, " + recorder.streams(MuxRecorder.MULTIPLEX));
    } finally {
      threads.shutdownNow();
      channel.shutdownNow();
      channel.awaitTermination(10, TimeUnit.SECONDS);
    }
  }
}
