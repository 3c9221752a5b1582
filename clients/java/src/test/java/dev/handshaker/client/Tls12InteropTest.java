package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * TLS 1.2 through a real handshaker service against JSSE peers that speak only TLSv1.2, in both
 * roles: the six ECDHE AEAD suites with application data both ways, mutual TLS, close_notify,
 * no KeyUpdate, and the RFC 5705 exporter (library on both ends: JSSE 17 has no exporter API).
 */
class Tls12InteropTest {
  private static final String TLS12 = "TLSv1.2";
  private static HandshakerService service;
  private static String devCa;

  @BeforeAll
  static void startService() throws Exception {
    service = HandshakerService.start();
    // An RSA credential for the ECDHE_RSA suites.
    service.addCredential("rsa", "--san", "DNS:rsa.test", "--key-type", "rsa-2048");
    devCa = service.devCaPem();
  }

  @AfterAll
  static void stopService() throws IOException {
    if (service != null) {
      service.close();
    }
  }

  /** The keystore credential for a suite's signature algorithm: "rsa" for ECDHE_RSA. */
  private static String credentialFor(CipherSuite suite) {
    return suite.name().contains("_RSA_") ? "rsa" : "localhost";
  }

  private static String serverNameFor(CipherSuite suite) {
    return suite.name().contains("_RSA_") ? "rsa.test" : "localhost";
  }

  /** Echoes {@code length} bytes back, then returns what the JSSE side negotiated. */
  private static String echo(SSLSocket socket, int length) throws IOException {
    InputStream in = socket.getInputStream();
    OutputStream out = socket.getOutputStream();
    byte[] buffer = new byte[8192];
    for (int total = 0, n; total < length && (n = in.read(buffer)) > 0; total += n) {
      out.write(buffer, 0, n);
    }
    out.flush();
    return socket.getSession().getProtocol() + " " + socket.getSession().getCipherSuite();
  }

  /** Writes {@code payload} from another thread and reads its echo. */
  private static void roundTrip(HandshakerSocket socket, byte[] payload) throws Exception {
    CompletableFuture<Void> written =
        CompletableFuture.runAsync(
            () -> {
              try {
                socket.getOutputStream().write(payload);
              } catch (IOException e) {
                throw new RuntimeException(e);
              }
            });
    assertArrayEquals(payload, socket.getInputStream().readNBytes(payload.length));
    written.get(20, TimeUnit.SECONDS);
  }

  private static byte[] randomBytes(int length) {
    byte[] bytes = new byte[length];
    new Random(5246).nextBytes(bytes);
    return bytes;
  }

  // ------------------------------------------------------------------ library client, JSSE server

  @ParameterizedTest
  @EnumSource(
      value = CipherSuite.class,
      names = "TLS_ECDHE_.*",
      mode = EnumSource.Mode.MATCH_ANY)
  void libraryClientExchangesDataWithJsseTls12Server(CipherSuite suite) throws Exception {
    byte[] payload = randomBytes(100_000);
    SSLContext context = Pki.context(devCa, service.credentialDir(credentialFor(suite)));
    try (JsseServer<String> server =
        new JsseServer<>(context, TLS12, false, new String[] {suite.name()}, s -> echo(s, payload.length))) {
      ClientConfig config =
          service.client().trustBundle("dev-ca").serverName(serverNameFor(suite)).build();
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
        SessionInfo session = socket.session();
        assertEquals("TLSv1.2", session.protocol());
        assertEquals(0x0303, session.protocolVersion());
        assertEquals(suite, session.cipherSuite());
        roundTrip(socket, payload);
      }
      assertEquals("TLSv1.2 " + suite.name(), server.result());
    }
  }

  @Test
  void libraryClientPresentsItsCertificateToJsseTls12Server() throws Exception {
    SSLContext context = Pki.context(devCa, service.credentialDir("localhost"));
    try (JsseServer<X509Certificate> server =
        new JsseServer<>(
            context,
            TLS12,
            true,
            null,
            socket -> {
              Http.readHead(socket.getInputStream());
              Http.respond(socket.getOutputStream(), "hello, TLS 1.2 client");
              return (X509Certificate) socket.getSession().getPeerCertificates()[0];
            })) {
      ClientConfig config = service.client().trustBundle("dev-ca").credential("client").build();
      String response;
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
        assertEquals("TLSv1.2", socket.session().protocol());
        Http.get(socket.getOutputStream(), "localhost", "/");
        response = new String(socket.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
      }
      assertTrue(response.endsWith("hello, TLS 1.2 client"), response);
      assertTrue(server.result().getSubjectAlternativeNames().contains(List.of(2, "client")));
    }
  }

  @Test
  void updateKeysIsRefusedOnTls12AndTheConnectionGoesOn() throws Exception {
    SSLContext context = Pki.context(devCa, service.credentialDir("localhost"));
    try (JsseServer<String> server = new JsseServer<>(context, TLS12, false, null, s -> echo(s, 10))) {
      ClientConfig config = service.client().trustBundle("dev-ca").build();
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
        roundTrip(socket, "before".getBytes(StandardCharsets.US_ASCII));
        assertThrows(SSLException.class, () -> socket.updateKeys(true));
        roundTrip(socket, "11".getBytes(StandardCharsets.US_ASCII));
        assertArrayEquals(new int[] {0, 0}, socket.keyUpdateCounts());
      }
      server.result();
    }
  }

  @Test
  void minVersionTls13RefusesAJsseTls12Server() throws Exception {
    SSLContext context = Pki.context(devCa, service.credentialDir("localhost"));
    try (JsseServer<String> server =
        new JsseServer<>(
            context,
            TLS12,
            false,
            null,
            socket -> {
              socket.startHandshake();
              return "handshake completed";
            })) {
      ClientConfig config = service.client().trustBundle("dev-ca").minVersion("TLSv1.3").build();
      HandshakeFailedException failure =
          assertThrows(
              HandshakeFailedException.class,
              () -> HandshakerSocket.connect("localhost", server.port(), config));
      assertEquals(Alert.PROTOCOL_VERSION, failure.alert());
      assertThrows(ExecutionException.class, server::result);
    }
  }

  @Test
  void maxVersionTls12GetsTls12FromAJsseTls13Server() throws Exception {
    SSLContext context = Pki.context(devCa, service.credentialDir("localhost"));
    try (JsseServer<String> server =
        new JsseServer<>(
            context,
            "TLSv1.2",
            false,
            null,
            socket -> {
              socket.startHandshake();
              return socket.getSession().getProtocol();
            })) {
      ClientConfig config = service.client().trustBundle("dev-ca").maxVersion("TLSv1.2").build();
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", server.port(), config)) {
        assertEquals("TLSv1.2", socket.session().protocol());
      }
      assertEquals("TLSv1.2", server.result());
    }
    assertThrows(IllegalArgumentException.class, () -> service.client().minVersion("TLSv1.1"));
  }

  // ------------------------------------------------------------------ library on both ends

  @Test
  void bothEndsExportTheSameKeyingMaterialOverTls12() throws Exception {
    byte[] label = "EXPORTER-handshaker-test".getBytes(StandardCharsets.US_ASCII);
    byte[] context = "context".getBytes(StandardCharsets.US_ASCII);
    ServerConfig serverConfig = service.server().credential("localhost").maxVersion(TLS12).build();
    try (HandshakerServerSocket listener =
        HandshakerServerSocket.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), serverConfig)) {
      CompletableFuture<Void> served =
          CompletableFuture.runAsync(
              () -> {
                try (HandshakerSocket socket = listener.accept()) {
                  socket.setSoTimeout(20_000);
                  SessionInfo session = socket.session();
                  OutputStream out = socket.getOutputStream();
                  out.write(session.exportKeyingMaterial(label, context, 32));
                  out.write(session.exportKeyingMaterial(label, null, 32));
                  out.write(session.exportKeyingMaterial(label, new byte[0], 32));
                  socket.getInputStream().read();
                } catch (IOException e) {
                  throw new RuntimeException(e);
                }
              });
      ClientConfig config = service.client().trustBundle("dev-ca").build();
      try (HandshakerSocket socket = HandshakerSocket.connect("localhost", listener.getLocalPort(), config)) {
        SessionInfo session = socket.session();
        assertEquals("TLSv1.2", session.protocol());
        byte[] peer = socket.getInputStream().readNBytes(96);
        byte[] withContext = session.exportKeyingMaterial(label, context, 32);
        byte[] noContext = session.exportKeyingMaterial(label, null, 32);
        byte[] emptyContext = session.exportKeyingMaterial(label, new byte[0], 32);
        assertArrayEquals(Arrays.copyOfRange(peer, 0, 32), withContext);
        assertArrayEquals(Arrays.copyOfRange(peer, 32, 64), noContext);
        assertArrayEquals(Arrays.copyOfRange(peer, 64, 96), emptyContext);
        // RFC 5705: no context and an empty context are different inputs.
        assertFalse(Arrays.equals(noContext, emptyContext));
        assertThrows(
            SSLException.class,
            () -> session.exportKeyingMaterial("master secret".getBytes(StandardCharsets.US_ASCII), null, 32));
      }
      served.get(30, TimeUnit.SECONDS);
    }
  }

  // ------------------------------------------------------------------ JSSE client, library server

  /** A JSSE client socket that speaks only TLSv1.2, with {@code suite} when set. */
  private static SSLSocket jsseTls12Client(SSLContext context, int port, String suite) throws IOException {
    SSLSocket client = (SSLSocket) context.getSocketFactory().createSocket("localhost", port);
    client.setSoTimeout(20_000);
    SSLParameters parameters = client.getSSLParameters();
    parameters.setProtocols(new String[] {TLS12});
    if (suite != null) {
      parameters.setCipherSuites(new String[] {suite});
    }
    client.setSSLParameters(parameters);
    return client;
  }

  /** Accepts one connection on {@code listener}, echoes until close_notify, returns the session. */
  private static CompletableFuture<SessionInfo> serveEcho(HandshakerServerSocket listener) {
    return CompletableFuture.supplyAsync(
        () -> {
          try (HandshakerSocket socket = listener.accept()) {
            socket.setSoTimeout(20_000);
            socket.startHandshake();
            InputStream in = socket.getInputStream();
            OutputStream out = socket.getOutputStream();
            in.transferTo(out);
            return socket.session();
          } catch (IOException e) {
            throw new RuntimeException(e);
          }
        });
  }

  @ParameterizedTest
  @EnumSource(
      value = CipherSuite.class,
      names = "TLS_ECDHE_.*",
      mode = EnumSource.Mode.MATCH_ANY)
  void jsseTls12ClientExchangesDataWithLibraryServer(CipherSuite suite) throws Exception {
    byte[] payload = randomBytes(100_000);
    ServerConfig config = service.server().credential(credentialFor(suite)).build();
    try (HandshakerServerSocket listener =
        HandshakerServerSocket.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), config)) {
      CompletableFuture<SessionInfo> served = serveEcho(listener);
      try (SSLSocket client = jsseTls12Client(Pki.context(devCa, null), listener.getLocalPort(), suite.name())) {
        client.startHandshake();
        assertEquals("TLSv1.2", client.getSession().getProtocol());
        assertEquals(suite.name(), client.getSession().getCipherSuite());
        CompletableFuture<Void> written =
            CompletableFuture.runAsync(
                () -> {
                  try {
                    client.getOutputStream().write(payload);
                    client.getOutputStream().flush();
                  } catch (IOException e) {
                    throw new RuntimeException(e);
                  }
                });
        assertArrayEquals(payload, client.getInputStream().readNBytes(payload.length));
        written.get(20, TimeUnit.SECONDS);
        // Our close_notify ends the server's echo; its close_notify ends our stream.
        client.shutdownOutput();
        assertEquals(-1, client.getInputStream().read());
      }
      SessionInfo session = served.get(30, TimeUnit.SECONDS);
      assertEquals("TLSv1.2", session.protocol());
      assertEquals(suite, session.cipherSuite());
    }
  }

  @Test
  void libraryServerRequiringClientCertificatesSeesTheJsseTls12ClientIdentity() throws Exception {
    ServerConfig config =
        service.server().credential("localhost").clientAuth(ClientAuth.REQUIRED).clientTrustBundle("dev-ca").build();
    try (LibraryHttpServer server = new LibraryHttpServer(config)) {
      SSLContext context = Pki.context(devCa, service.credentialDir("client"));
      try (SSLSocket client = jsseTls12Client(context, server.port(), null)) {
        Http.get(client.getOutputStream(), "localhost", "/mtls12");
        String response = new String(client.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(response.endsWith("hello from handshaker, path /mtls12"), response);
        assertEquals("TLSv1.2", client.getSession().getProtocol());
      }
      SessionInfo session = server.served();
      assertEquals("TLSv1.2", session.protocol());
      assertEquals(List.of("client"), session.peerDnsNames());
    }
  }

  @Test
  void libraryServerRejectsJsseTls12ClientWithoutCertificate() throws Exception {
    ServerConfig config =
        service.server().credential("localhost").clientAuth(ClientAuth.REQUIRED).clientTrustBundle("dev-ca").build();
    try (LibraryHttpServer server = new LibraryHttpServer(config)) {
      try (SSLSocket client = jsseTls12Client(Pki.context(devCa, null), server.port(), null)) {
        // TLS 1.2: the server judges the empty Certificate before its Finished.
        assertThrows(SSLException.class, client::startHandshake);
      }
      ExecutionException serverSide = assertThrows(ExecutionException.class, server::served);
      HandshakeFailedException failure = assertInstanceOf(HandshakeFailedException.class, serverSide.getCause());
      assertFalse(failure.sentByPeer());
    }
  }
}
