package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The multiplex setting: handshakes on a channel's shared Multiplex streams, against a real
 * service, watched through an interceptor that records the streams opened and the frames and
 * results on them. Each test has a channel of its own, and so a multiplexer of its own.
 */
class MultiplexTest {
  private static HandshakerService service;
  private static String devCa;

  private MuxRecorder recorder;
  private ManagedChannel channel;

  @BeforeAll
  static void startService() throws Exception {
    service = HandshakerService.start();
    devCa = service.devCaPem();
  }

  @AfterAll
  static void stopService() throws IOException {
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
    channel.shutdownNow();
    channel.awaitTermination(10, TimeUnit.SECONDS);
  }

  private ClientConfig.Builder client() {
    return ClientConfig.builder().channel(channel).multiplex(true).serverName("localhost").trustBundle("dev-ca");
  }

  private static SSLContext jsseServerContext() throws Exception {
    return Pki.context(devCa, service.credentialDir("localhost"));
  }

  /** Writes {@code message} and reads it back from an echoing peer. */
  private static void echoes(HandshakerSocket socket, byte[] message) throws IOException {
    socket.getOutputStream().write(message);
    assertArrayEquals(message, socket.getInputStream().readNBytes(message.length));
  }

  // ------------------------------------------------------------------ both roles

  @Test
  void clientRoleExchangesDataBothWaysWithJsseServer() throws Exception {
    byte[] payload = new byte[100_000];
    new Random(1).nextBytes(payload);
    try (JsseServer<String> server =
        new JsseServer<>(
            jsseServerContext(),
            false,
            null,
            socket -> {
              BufferedReader in =
                  new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
              OutputStream out = socket.getOutputStream();
              out.write((in.readLine().toUpperCase() + "\n").getBytes(StandardCharsets.UTF_8));
              out.write(payload);
              out.flush();
              return socket.getSession().getCipherSuite() + " " + in.readLine();
            })) {
      ClientConfig config = client().alpnProtocols("http/1.1").build();
      assertTrue(config.multiplex());
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
        assertEquals("TLSv1.3", socket.session().protocol());
        assertEquals("http/1.1", socket.getApplicationProtocol());
        OutputStream out = socket.getOutputStream();
        out.write("client to server\n".getBytes(StandardCharsets.UTF_8));
        assertEquals(
            "CLIENT TO SERVER\n",
            new String(socket.getInputStream().readNBytes(17), StandardCharsets.UTF_8));
        assertArrayEquals(payload, socket.getInputStream().readNBytes(payload.length));
        out.write("done\n".getBytes(StandardCharsets.UTF_8));
        assertEquals(socket.session().cipherSuite().name() + " done", server.result());
      }
    }
    assertEquals(1, recorder.streams(MuxRecorder.MULTIPLEX));
    assertEquals(0, recorder.streams(MuxRecorder.HANDSHAKE), "Handshake streams with multiplex set");
    long id = recorder.lastStart();
    assertEquals(List.of(id), recorder.starts());
    assertTrue(recorder.ended(id), "no COMPLETE result for the connection");
    assertEquals(0, recorder.abortCount(), "a completed handshake was aborted");
  }

  @Test
  void withoutMultiplexEachHandshakeHasAHandshakeStream() throws Exception {
    try (JsseEchoServer server = new JsseEchoServer(jsseServerContext())) {
      ClientConfig config = client().multiplex(false).build();
      assertFalse(config.multiplex());
      for (int i = 0; i < 2; i++) {
        try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
          echoes(socket, ("stream " + i).getBytes(StandardCharsets.UTF_8));
        }
      }
    }
    assertEquals(2, recorder.streams(MuxRecorder.HANDSHAKE));
    assertEquals(0, recorder.streams(MuxRecorder.MULTIPLEX));
  }

  @Test
  void serverRoleServesJsseClients() throws Exception {
    ServerConfig config =
        ServerConfig.builder().channel(channel).multiplex(true).credential("localhost").build();
    assertTrue(config.multiplex());
    int clients = 3;
    byte[] payload = new byte[70_000];
    new Random(2).nextBytes(payload);
    try (HandshakerServerSocket listener =
        HandshakerServerSocket.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), config)) {
      CompletableFuture<List<SessionInfo>> served =
          CompletableFuture.supplyAsync(
              () -> {
                List<SessionInfo> sessions = new ArrayList<>();
                for (int i = 0; i < clients; i++) {
                  try (HandshakerSocket socket = listener.accept()) {
                    socket.setSoTimeout(20_000);
                    byte[] got = socket.getInputStream().readNBytes(payload.length);
                    socket.getOutputStream().write(got);
                    sessions.add(socket.session());
                  } catch (IOException e) {
                    throw new RuntimeException(e);
                  }
                }
                return sessions;
              });
      SSLContext context = Pki.context(devCa, null);
      for (int i = 0; i < clients; i++) {
        try (SSLSocket client =
            (SSLSocket) context.getSocketFactory().createSocket("localhost", listener.getLocalPort())) {
          client.setSoTimeout(20_000);
          client.getOutputStream().write(payload);
          client.getOutputStream().flush();
          assertArrayEquals(payload, client.getInputStream().readNBytes(payload.length));
          assertEquals("TLSv1.3", client.getSession().getProtocol());
        }
      }
      List<SessionInfo> sessions = served.get(30, TimeUnit.SECONDS);
      assertEquals(clients, sessions.size());
      for (SessionInfo session : sessions) {
        assertEquals("TLSv1.3", session.protocol());
        assertTrue(session.peerCertificates().isEmpty());
      }
    }
    // Connection ids 1, 2, 3 map to both streams.
    assertEquals(2, recorder.streams(MuxRecorder.MULTIPLEX));
    assertEquals(0, recorder.streams(MuxRecorder.HANDSHAKE), "Handshake streams with multiplex set");
    assertEquals(List.of(1L, 2L, 3L), recorder.starts());
    for (long id = 1; id <= clients; id++) {
      assertTrue(recorder.ended(id), "no COMPLETE result for connection " + id);
    }
    assertEquals(0, recorder.abortCount());
  }

  // ------------------------------------------------------------------ many connections

  @Test
  void fiftyConcurrentHandshakesOnOneMultiplexerAllComplete() throws Exception {
    int n = 50;
    ExecutorService threads = Executors.newFixedThreadPool(n);
    try (JsseEchoServer server = new JsseEchoServer(jsseServerContext())) {
      CountDownLatch ready = new CountDownLatch(n);
      List<Future<?>> handshakes = new ArrayList<>();
      for (int i = 0; i < n; i++) {
        int index = i;
        handshakes.add(
            threads.submit(
                () -> {
                  // A config each, as callers with per-connection settings have: the channel, and
                  // so the streams, are still shared.
                  ClientConfig config = client().build();
                  ready.countDown();
                  ready.await();
                  try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
                    echoes(socket, ("handshake " + index).getBytes(StandardCharsets.UTF_8));
                  }
                  return null;
                }));
      }
      for (Future<?> handshake : handshakes) {
        handshake.get(60, TimeUnit.SECONDS);
      }
    } finally {
      threads.shutdownNow();
    }
    assertEquals(2, recorder.streams(MuxRecorder.MULTIPLEX));
    assertEquals(0, recorder.streams(MuxRecorder.HANDSHAKE));
    assertEquals(n, recorder.starts().size());
    assertEquals(n, recorder.endedCount());
    assertEquals(0, recorder.abortCount());
    // Each client handshake takes at least two frames: the start and the server's flight.
    assertTrue(recorder.frames() >= 2 * n, recorder.frames() + " frames");
    assertTrue(
        recorder.maxBatch() >= 2 && recorder.requests() < recorder.frames(),
        recorder.frames()
            + " frames in "
            + recorder.requests()
            + " requests, at most "
            + recorder.maxBatch()
            + " in one: frames ready together were not batched");
  }

  // ------------------------------------------------------------------ one connection fails

  /**
   * Starts {@code n} handshakes through a gate to {@code upstream} and waits until each is live in
   * the service, held mid-handshake; they finish with an echo once the gate opens.
   */
  private List<Future<?>> heldHandshakes(
      ExecutorService threads, Gate gate, int n) throws InterruptedException {
    List<Future<?>> held = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      int index = i;
      held.add(
          threads.submit(
              () -> {
                try (HandshakerSocket socket = HandshakerSocket.connect("localhost", gate.port(), client().build())) {
                  echoes(socket, ("held " + index).getBytes(StandardCharsets.UTF_8));
                }
                return null;
              }));
    }
    assertTrue(gate.await(n, 20), "fewer than " + n + " connections reached the gate");
    return held;
  }

  @Test
  void aFailingHandshakeLeavesTheOthersOnItsStreamRunning() throws Exception {
    int held = 6;
    ExecutorService threads = Executors.newCachedThreadPool();
    try (JsseEchoServer server = new JsseEchoServer(jsseServerContext());
        Gate gate = new Gate(server.port())) {
      List<Future<?>> running = heldHandshakes(threads, gate, held);

      // Live connections on both streams; now one fails beside them: the server's chain does not
      // lead to another keystore's CA.
      ClientConfig wrongCa = client().trustAnchorsPem(service.foreignCaPem()).build();
      HandshakeFailedException failure =
          assertThrows(
              HandshakeFailedException.class,
              () -> HandshakerSocket.connect("localhost", server.port(), wrongCa));
      assertEquals(Alert.UNKNOWN_CA, failure.alert());
      assertFalse(failure.sentByPeer());
      long failed = recorder.lastStart();
      assertEquals(held + 1, failed);
      assertTrue(recorder.ended(failed), "no FAILED result");
      assertFalse(recorder.aborted(failed), "a connection the service ended was aborted");

      gate.open();
      for (Future<?> handshake : running) {
        handshake.get(30, TimeUnit.SECONDS);
      }
    } finally {
      threads.shutdownNow();
    }
    assertEquals(2, recorder.streams(MuxRecorder.MULTIPLEX), "not the same 2 streams throughout");
    assertEquals(held + 1, recorder.endedCount());
  }

  @Test
  void misuseEndsOnlyThatConnectionWithItsStatus() throws Exception {
    int held = 6;
    ExecutorService threads = Executors.newCachedThreadPool();
    try (JsseEchoServer server = new JsseEchoServer(jsseServerContext());
        Gate gate = new Gate(server.port())) {
      List<Future<?>> running = heldHandshakes(threads, gate, held);

      // Client role: a client certificate the keystore does not hold.
      ClientConfig unknownCredential = client().credential("no-such-credential").build();
      HandshakerServiceException clientSide =
          assertThrows(
              HandshakerServiceException.class,
              () -> HandshakerSocket.connect("localhost", server.port(), unknownCredential));
      assertEquals(Status.Code.NOT_FOUND, clientSide.status().getCode());
      assertTrue(clientSide.getMessage().startsWith("handshaker service: NOT_FOUND"), clientSide.getMessage());
      long misused = recorder.lastStart();
      assertEquals(Status.Code.NOT_FOUND.value(), recorder.errorCode(misused));
      assertFalse(recorder.aborted(misused), "a connection the service ended was aborted");

      // Server role: a credential to serve that the keystore does not hold.
      ServerConfig unknownServing =
          ServerConfig.builder().channel(channel).multiplex(true).credential("no-such-credential").build();
      try (HandshakerServerSocket listener =
          HandshakerServerSocket.bind(
              new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), unknownServing)) {
        Future<?> jsseClient =
            threads.submit(
                () -> {
                  try (SSLSocket socket =
                      (SSLSocket)
                          Pki.context(devCa, null)
                              .getSocketFactory()
                              .createSocket("localhost", listener.getLocalPort())) {
                    socket.setSoTimeout(20_000);
                    socket.startHandshake();
                  }
                  return null;
                });
        try (HandshakerSocket accepted = listener.accept()) {
          HandshakerServiceException serverSide =
              assertThrows(HandshakerServiceException.class, accepted::startHandshake);
          assertEquals(Status.Code.NOT_FOUND, serverSide.status().getCode());
          assertTrue(accepted.isClosed());
        }
        // The JSSE client sees the connection end without a ServerHello.
        ExecutionException clientFailure =
            assertThrows(ExecutionException.class, () -> jsseClient.get(20, TimeUnit.SECONDS));
        assertInstanceOf(IOException.class, clientFailure.getCause());
      }
      long misusedServer = recorder.lastStart();
      assertEquals(Status.Code.NOT_FOUND.value(), recorder.errorCode(misusedServer));

      gate.open();
      for (Future<?> handshake : running) {
        handshake.get(30, TimeUnit.SECONDS);
      }
      for (long id = 1; id <= held; id++) {
        assertTrue(recorder.ended(id), "held connection " + id + " did not complete");
        assertNull(recorder.errorCode(id));
      }
    } finally {
      threads.shutdownNow();
    }
    assertEquals(2, recorder.streams(MuxRecorder.MULTIPLEX), "not the same 2 streams throughout");
    assertEquals(0, recorder.abortCount());
  }

  // ------------------------------------------------------------------ the channel

  @Test
  void configsWithTheSameServiceAddressShareOneMultiplexer() throws Exception {
    try (JsseEchoServer server = new JsseEchoServer(jsseServerContext())) {
      for (int i = 0; i < 2; i++) {
        // Two configs, one address: one shared channel, so one multiplexer.
        ClientConfig config = service.client().multiplex(true).trustBundle("dev-ca").build();
        try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
          echoes(socket, ("by address " + i).getBytes(StandardCharsets.UTF_8));
        }
      }
    }
    Multiplexer shared = Multiplexer.forChannel(ServiceChannels.forAddress(service.address()));
    try (Multiplexer.Connection next = shared.connect(Duration.ofSeconds(1))) {
      assertEquals(3, next.id(), "the two handshakes did not take connection ids 1 and 2 of one multiplexer");
    }
  }

  @Test
  void shuttingDownTheChannelEndsItsMultiplexStreams() throws Exception {
    try (JsseEchoServer server = new JsseEchoServer(jsseServerContext())) {
      for (int i = 0; i < 2; i++) {
        try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), client().build())) {
          echoes(socket, "before shutdown".getBytes(StandardCharsets.UTF_8));
        }
      }
      assertEquals(2, recorder.streams(MuxRecorder.MULTIPLEX));
      // An orderly shutdown lets calls in progress finish: the idle streams must end by themselves.
      channel.shutdown();
      assertTrue(channel.awaitTermination(10, TimeUnit.SECONDS), "the Multiplex streams kept the channel open");
      HandshakerServiceException failure =
          assertThrows(
              HandshakerServiceException.class,
              () -> HandshakerSocket.connect("localhost", server.port(), client().build()));
      assertEquals(Status.Code.UNAVAILABLE, failure.status().getCode());
    }
  }
}
