package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The library on both ends: both handshakes run in the service, the records are ours. */
class LibraryPairTest {
  private static final byte[] LABEL = "EXPORTER-handshaker-test".getBytes(StandardCharsets.US_ASCII);

  private static HandshakerService service;

  @BeforeAll
  static void startService() throws Exception {
    service = HandshakerService.start();
  }

  @AfterAll
  static void stopService() throws IOException {
    if (service != null) {
      service.close();
    }
  }

  /** What the server side saw: its session, the exporter value and the lines it read. */
  private record ServerView(SessionInfo session, byte[] exported, List<String> lines) {}

  @Test
  void mutualTlsChaChaKeyUpdatesAndExporterBetweenLibraryPeers() throws Exception {
    ServerConfig serverConfig =
        service
            .server()
            .credential("localhost")
            .alpnProtocols("h2", "http/1.1")
            .clientAuth(ClientAuth.REQUIRED)
            .clientTrustBundle("dev-ca")
            .build();
    try (HandshakerServerSocket listener =
        HandshakerServerSocket.bind(
            new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), serverConfig)) {
      CompletableFuture<ServerView> served =
          CompletableFuture.supplyAsync(
              () -> {
                try (HandshakerSocket socket = listener.accept()) {
                  socket.setSoTimeout(20_000);
                  BufferedReader in =
                      new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
                  OutputStream out = socket.getOutputStream();
                  String first = in.readLine();
                  out.write((first.toUpperCase() + "\n").getBytes(StandardCharsets.UTF_8));
                  socket.updateKeys(true);
                  out.write("SECOND\n".getBytes(StandardCharsets.UTF_8));
                  String third = in.readLine();
                  byte[] exported = socket.session().exportKeyingMaterial(LABEL, new byte[] {1}, 32);
                  return new ServerView(socket.session(), exported, List.of(first, third));
                } catch (IOException e) {
                  throw new RuntimeException(e);
                }
              });
      ClientConfig clientConfig =
          service
              .client()
              .trustBundle("dev-ca")
              .credential("client")
              .alpnProtocols("http/1.1")
              .cipherSuites(CipherSuite.TLS_CHACHA20_POLY1305_SHA256)
              .build();
      byte[] clientExported;
      SessionInfo clientSession;
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", listener.getLocalPort(), clientConfig)) {
        clientSession = socket.session();
        BufferedReader in =
            new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
        OutputStream out = socket.getOutputStream();
        out.write("first\n".getBytes(StandardCharsets.UTF_8));
        assertEquals("FIRST", in.readLine());
        assertEquals("SECOND", in.readLine());
        socket.updateKeys(false);
        out.write("third\n".getBytes(StandardCharsets.UTF_8));
        clientExported = clientSession.exportKeyingMaterial(LABEL, new byte[] {1}, 32);
        // Sent: the answer to the server's request and our own unrequested update.
        assertEquals(2, socket.keyUpdateCounts()[1]);
      }
      ServerView server = served.get(30, TimeUnit.SECONDS);
      assertEquals(List.of("first", "third"), server.lines());
      assertEquals(CipherSuite.TLS_CHACHA20_POLY1305_SHA256, clientSession.cipherSuite());
      assertEquals(CipherSuite.TLS_CHACHA20_POLY1305_SHA256, server.session().cipherSuite());
      assertEquals("http/1.1", clientSession.applicationProtocol());
      assertEquals("http/1.1", server.session().applicationProtocol());
      assertEquals(List.of("client"), server.session().peerDnsNames());
      assertEquals(List.of("localhost"), clientSession.peerDnsNames());
      // Both credentials are ECDSA P-256: each side's CertificateVerify is ecdsa_secp256r1_sha256.
      assertEquals(0x0403, clientSession.peerSignatureScheme());
      assertEquals(0x0403, clientSession.signatureScheme());
      assertEquals(clientSession.signatureScheme(), server.session().peerSignatureScheme());
      assertArrayEquals(clientExported, server.exported());
      assertFalse(
          java.util.Arrays.equals(
              clientExported, clientSession.exportKeyingMaterial(LABEL, new byte[] {2}, 32)));
    }
  }
}
